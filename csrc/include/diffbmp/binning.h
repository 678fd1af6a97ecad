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

// Calls visit(tile_index) for every tile of the tile rows row0 .. row1 (inclusive) that the
// primitive touches, in row-major order. The cpu backend walks a large primitive's rows in
// bands on several threads (rasterize_cpu.h); a whole walk is one band of all its rows.
template <typename T, typename F>
DIFFBMP_HD inline void visit_tile_rows(const PrimGeom<T>& g, int height, int width, int row0, int row1, F&& visit) {
  if (is_culled(g)) return;
  const int tiles_x = tiles_x_of(width);
  for (int ty = row0; ty <= row1; ++ty)
    for (int tx = g.x0 / TILE_SIZE; tx <= g.x1 / TILE_SIZE; ++tx)
      if (tile_touches(g, tx, ty, height, width)) visit(int64_t(ty) * tiles_x + tx);
}

// Calls visit(tile_index) for every tile the primitive touches, in row-major order.
template <typename T, typename F>
DIFFBMP_HD inline void visit_tiles(const PrimGeom<T>& g, int height, int width, F&& visit) {
  visit_tile_rows(g, height, width, g.y0 / TILE_SIZE, g.y1 / TILE_SIZE, visit);
}

// The first walk: how many tiles the primitive touches.
template <typename T>
DIFFBMP_HD inline int64_t count_tiles(const PrimGeom<T>& g, int height, int width) {
  int64_t count = 0;
  visit_tiles(g, height, width, [&](int64_t) { ++count; });
  return count;
}

// The writing walk over tile rows row0 .. row1: write(slot, tile) for the tiles the primitive
// touches there, in row-major order, into the slots [begin, end), then write(slot, sentinel)
// for any slot the walk left over. The sentinel is the tile index num_tiles: it sorts after
// every real tile and lies in no tile's range. Never writes outside [begin, end). Returns the
// number of tiles the walk found: end - begin, unless the two walks disagreed.
template <typename T, typename Write>
DIFFBMP_HD inline int64_t write_tile_rows(const PrimGeom<T>& g, int height, int width, int row0, int row1,
                                          int64_t begin, int64_t end, int64_t sentinel, Write&& write) {
  int64_t k = begin;
  visit_tile_rows(g, height, width, row0, row1, [&](int64_t tile) {
    if (k < end) write(k, tile);
    ++k;
  });
  const int64_t found = k - begin;
  for (int64_t slot = k; slot < end; ++slot) write(slot, sentinel);
  return found;
}

// The second walk, over all the primitive's rows (write_tile_rows).
template <typename T, typename Write>
DIFFBMP_HD inline int64_t write_pairs(const PrimGeom<T>& g, int height, int width, int64_t begin, int64_t end,
                                      int64_t sentinel, Write&& write) {
  return write_tile_rows(g, height, width, g.y0 / TILE_SIZE, g.y1 / TILE_SIZE, begin, end, sentinel, write);
}

}  // namespace diffbmp
