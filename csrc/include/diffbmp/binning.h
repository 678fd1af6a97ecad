// Binning (docs/architecture.md, "Binning"): the 16x16 tiles a primitive touches and its
// (tile, primitive) pairs. Both backends walk each primitive's tiles twice: once to count them,
// and, after a prefix sum of the counts has given every primitive its slots, once to write
// them. The two walks agree bit for bit because the tile test is exactly rounded
// (geometry.h, tile_touches); the write is bounded by the count all the same, so even a
// disagreement can neither write outside a primitive's slots nor leave a slot unwritten.
#pragma once

#include <stdint.h>

#include "common.h"
#include "constants.h"
#include "geometry.h"

namespace diffbmp {

DIFFBMP_HD inline int tiles_x_of(int width) { return (width + TILE_SIZE - 1) / TILE_SIZE; }
DIFFBMP_HD inline int tiles_y_of(int height) { return (height + TILE_SIZE - 1) / TILE_SIZE; }

// Calls visit(tile_index) for every tile the primitive touches, in row-major order.
template <typename T, typename F>
DIFFBMP_HD inline void visit_tiles(const PrimGeom<T>& g, int height, int width, F&& visit) {
  if (is_culled(g)) return;
  const int tiles_x = tiles_x_of(width);
  for (int ty = g.y0 / TILE_SIZE; ty <= g.y1 / TILE_SIZE; ++ty)
    for (int tx = g.x0 / TILE_SIZE; tx <= g.x1 / TILE_SIZE; ++tx)
      if (tile_touches(g, tx, ty, height, width)) visit(int64_t(ty) * tiles_x + tx);
}

// The first walk: how many tiles the primitive touches.
template <typename T>
DIFFBMP_HD inline int64_t count_tiles(const PrimGeom<T>& g, int height, int width) {
  int64_t count = 0;
  visit_tiles(g, height, width, [&](int64_t) { ++count; });
  return count;
}

// The second walk: write(slot, tile) for the tiles the primitive touches, in row-major order,
// into its slots [begin, end), then write(slot, sentinel) for any slot the walk left over.
// The sentinel is the tile index num_tiles: it sorts after every real tile and lies in no
// tile's range. Never writes outside [begin, end). Returns the number of tiles the walk
// found: end - begin, unless the two walks disagreed.
template <typename T, typename Write>
DIFFBMP_HD inline int64_t write_pairs(const PrimGeom<T>& g, int height, int width, int64_t begin, int64_t end,
                                      int64_t sentinel, Write&& write) {
  int64_t k = begin;
  visit_tiles(g, height, width, [&](int64_t tile) {
    if (k < end) write(k, tile);
    ++k;
  });
  const int64_t found = k - begin;
  for (int64_t slot = k; slot < end; ++slot) write(slot, sentinel);
  return found;
}

}  // namespace diffbmp
