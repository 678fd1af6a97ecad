// The cpu backend's loops: prepare, bin, forward and backward over 16x16 tiles, tiles in
// parallel. The per-primitive and per-pair mathematics come from csrc/include/diffbmp.
// Raw pointers only; the host op (ops_cpu.cpp) checks inputs and owns every allocation.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "diffbmp/binning.h"
#include "diffbmp/constants.h"
#include "diffbmp/geometry.h"
#include "diffbmp/pixel.h"
#include "diffbmp/scene_inputs.h"
#if defined(__GNUC__) || defined(__clang__)
#define DIFFBMP_CPU_LANES 1  // GCC and Clang vector types (lanes.h); other compilers take the scalar path
#include "pixel_lanes.h"
#endif

namespace diffbmp {
namespace cpu {

constexpr int TILE_PIXELS = TILE_SIZE * TILE_SIZE;

// How the tile loops evaluate pixels: a vector of neighbouring pixels of a row at once, or one
// pixel at a time (the readable reference the vector path is tested against); ops_cpu.cpp
// chooses the default.
enum class PixelPath { lanes, scalar };

// The inputs of one composite call, with the tile grid and per-primitive look.
template <typename T>
struct SceneView : SceneInputs<T> {
  explicit SceneView(const SceneInputs<T>& inputs) : SceneInputs<T>(inputs) {}

  int tiles_x() const { return tiles_x_of(this->width); }
  int tiles_y() const { return tiles_y_of(this->height); }
  int64_t num_tiles() const { return int64_t(tiles_x()) * tiles_y(); }

  PrimLook<T> look(int64_t i) const {
    const T* c = this->colors + 3 * i;
    return PrimLook<T>{{c[0], c[1], c[2]}, this->opacities[i], this->beta[i]};
  }
};

// The pixels of one tile, clipped to the canvas: columns px0..px1, rows py0..py1 (inclusive).
struct TileBox {
  int px0, py0, px1, py1;
};

template <typename T>
inline TileBox tile_box(const SceneView<T>& s, int64_t tile) {
  const int tiles_x = s.tiles_x();
  const int px0 = int(tile % tiles_x) * TILE_SIZE, py0 = int(tile / tiles_x) * TILE_SIZE;
  return TileBox{px0, py0, std::min(px0 + TILE_SIZE, s.width) - 1, std::min(py0 + TILE_SIZE, s.height) - 1};
}

// body(i, o) for every pixel of the tile: i its index in the tile's arrays (row stride
// TILE_SIZE), o its index in the canvas's (row stride width).
template <typename F>
inline void for_each_pixel(const TileBox& b, int width, const F& body) {
  for (int y = b.py0; y <= b.py1; ++y)
    for (int x = b.px0; x <= b.px1; ++x) body((y - b.py0) * TILE_SIZE + (x - b.px0), int64_t(y) * width + x);
}

// The k-th tile handed out: tiles go in blocks of BLOCK x BLOCK (row-major blocks, row-major
// inside each), so a primitive's tiles, above and below as well as beside, are visited close
// together in time and its texels are still in the cache for the next one.
constexpr int TILE_BLOCK = 4;
inline int64_t blocked_tile(int64_t k, int tiles_x, int tiles_y) {
  const int64_t block_area = int64_t(TILE_BLOCK) * TILE_BLOCK;
  const int blocks_x = (tiles_x + TILE_BLOCK - 1) / TILE_BLOCK;
  const int64_t full_rows = int64_t(tiles_y / TILE_BLOCK) * TILE_BLOCK * tiles_x;  // tiles in whole block rows
  if (k >= full_rows) return k;  // the last, partial block row: row-major
  const int64_t band = k / (int64_t(TILE_BLOCK) * tiles_x), in_band = k % (int64_t(TILE_BLOCK) * tiles_x);
  const int64_t block = in_band / block_area, offset = in_band % block_area;
  // Every block of a band is full width but the last, which holds the leftover columns.
  const int width = block + 1 < blocks_x || tiles_x % TILE_BLOCK == 0 ? TILE_BLOCK : tiles_x % TILE_BLOCK;
  const int64_t x = block * TILE_BLOCK + offset % width, y = band * TILE_BLOCK + offset / width;
  return y * tiles_x + x;
}

// Runs body(begin, end) over [0, count) in blocks of `block` handed out one at a time from a
// shared counter, so that a few heavy blocks never leave the other threads idle (at::parallel_for
// splits a range into equal parts up front). Each block is done by one thread.
template <typename F>
inline void for_each_block(int64_t count, int64_t block, const F& body) {
  if (count <= 0) return;
  const int64_t blocks = (count + block - 1) / block;
  std::atomic<int64_t> next(0);
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks));
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t b = next.fetch_add(1); b < blocks; b = next.fetch_add(1))
      body(b * block, std::min(count, (b + 1) * block));
  });
}

// Tiles are handed out one at a time (for_each_block), so a few heavy tiles never leave the
// other threads idle; each tile is owned by one thread, so results do not depend on the
// schedule (nor on the order above).
template <typename F>
inline void for_each_tile(int64_t num_tiles, int tiles_x, const F& body) {
  const int tiles_y = int(num_tiles / tiles_x);
  for_each_block(num_tiles, 1, [&](int64_t k, int64_t) { body(blocked_tile(k, tiles_x, tiles_y)); });
}

template <typename T>
std::vector<PrimGeom<T>> prepare_all(const SceneView<T>& s) {
  std::vector<PrimGeom<T>> geoms(s.n);
  at::parallel_for(0, s.n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) geoms[i] = prepare_primitive<T>(s, i);
  });
  return geoms;
}

// Binning walks a primitive's tiles in bands of whole tile rows: one band for most primitives;
// a primitive whose bounding box spans more than WALK_BAND_TILES tiles is cut into bands of about
// that many, walked by whichever threads are free, so a canvas-sized primitive (65,536 tiles
// at 4096 px) does not hold up the others. A primitive's bands follow each other and each writes
// its tiles in row-major order, so its pairs come out in the order of one whole walk.
constexpr int64_t WALK_BAND_TILES = 1024;
constexpr int64_t WALK_BLOCK = 64;  // bands handed out at a time

struct TileBand {
  int32_t prim, row0, row1;  // tile rows row0 .. row1 of primitive prim's bounding box
};

// The bands of a call, what the counting walk found in each, and (after count_pairs) each band's
// slots: a primitive's slots split between its bands in order, the last band taking any slots
// a count_skew added, and bands beyond a shortened count getting none.
struct TileWalks {
  std::vector<TileBand> bands;
  std::vector<int64_t> first_band;  // [n + 1]: primitive i's bands are first_band[i] .. first_band[i + 1] - 1
  std::vector<int64_t> found;       // [bands]: tiles found by the band's walk
  std::vector<int64_t> slot_begin, slot_end;  // [bands]
};

template <typename T>
TileWalks plan_walks(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms) {
  TileWalks w;
  w.first_band.resize(s.n + 1);
  w.bands.reserve(s.n);
  for (int64_t i = 0; i < s.n; ++i) {
    w.first_band[i] = int64_t(w.bands.size());
    const PrimGeom<T>& g = geoms[i];
    if (is_culled(g)) {
      w.bands.push_back(TileBand{int32_t(i), 0, -1});  // no rows: no tiles
      continue;
    }
    const int row0 = g.y0 / TILE_SIZE, row1 = g.y1 / TILE_SIZE;
    const int64_t rows = row1 - row0 + 1, box_tiles = rows * (g.x1 / TILE_SIZE - g.x0 / TILE_SIZE + 1);
    const int64_t bands = std::min(rows, (box_tiles + WALK_BAND_TILES - 1) / WALK_BAND_TILES);
    const int64_t rows_per_band = (rows + bands - 1) / bands;
    for (int64_t r = row0; r <= row1; r += rows_per_band)
      w.bands.push_back(TileBand{int32_t(i), int32_t(r), int32_t(std::min<int64_t>(row1, r + rows_per_band - 1))});
  }
  w.first_band[s.n] = int64_t(w.bands.size());
  w.found.assign(w.bands.size(), 0);
  return w;
}

// Step 1 of binning: prim_start[n + 1] - prim_start[n] is the number of tiles of primitive n
// (plus skew[n], floored at 0, where tests pass a skew to make the writing walk disagree).
// Returns the walks bin_pairs makes.
template <typename T>
TileWalks count_pairs(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, int64_t* prim_start,
                      const int64_t* skew = nullptr) {
  TileWalks w = plan_walks(s, geoms);
  const int64_t num_bands = int64_t(w.bands.size());
  for_each_block(num_bands, WALK_BLOCK, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const TileBand& band = w.bands[b];
      int64_t count = 0;
      visit_tile_rows(geoms[band.prim], s.height, s.width, band.row0, band.row1, [&](int64_t) { ++count; });
      w.found[b] = count;
    }
  });
  w.slot_begin.resize(num_bands);
  w.slot_end.resize(num_bands);
  prim_start[0] = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    int64_t tiles = 0;
    for (int64_t b = w.first_band[i]; b < w.first_band[i + 1]; ++b) tiles += w.found[b];
    const int64_t begin = prim_start[i], end = begin + std::max<int64_t>(0, tiles + (skew ? skew[i] : 0));
    prim_start[i + 1] = end;
    int64_t at = begin;
    for (int64_t b = w.first_band[i]; b < w.first_band[i + 1]; ++b) {
      w.slot_begin[b] = at;
      at = std::min(end, at + w.found[b]);
      w.slot_end[b] = b + 1 < w.first_band[i + 1] ? at : end;
    }
  }
  return w;
}

// Pairs per chunk of the parallel counting sort, at least; and its chunks' histograms may not
// hold more counts than there are pairs.
constexpr int64_t SORT_CHUNK_PAIRS = int64_t(1) << 16;

// Step 2: every band writes its pairs into its slots (binning.h, write_tile_rows), then a
// stable counting sort by tile keeps painting order inside every tile. pair_slot[p] is the
// emission index of sorted pair p. Slots the writing walk left over hold the sentinel tile
// num_tiles and sort after the last tile, outside every tile's range. Returns the number of
// primitives whose two walks disagreed: zero wherever the build keeps the tile test exact.
//
// The sort runs on chunks of the emitted pairs in parallel: each chunk counts its pairs per
// tile, a prefix over (tile, chunk) gives every chunk its first place in every tile, and each
// chunk scatters its pairs in order. The result is the serial sort's for any number of chunks.
template <typename T>
int64_t bin_pairs(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const TileWalks& w,
                  const int64_t* prim_start, int64_t* tile_start, int32_t* sorted_prim, int64_t* pair_slot) {
  const int64_t num_tiles = s.num_tiles();
  const int64_t total = prim_start[s.n];
  std::vector<int32_t> pair_tile(total);
  std::vector<int64_t> written(w.bands.size());
  for_each_block(int64_t(w.bands.size()), WALK_BLOCK, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const TileBand& band = w.bands[b];
      written[b] = write_tile_rows(geoms[band.prim], s.height, s.width, band.row0, band.row1, w.slot_begin[b],
                                   w.slot_end[b], num_tiles,
                                   [&](int64_t slot, int64_t tile) { pair_tile[slot] = int32_t(tile); });
    }
  });
  int64_t mismatches = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    int64_t tiles = 0;
    for (int64_t b = w.first_band[i]; b < w.first_band[i + 1]; ++b) tiles += written[b];
    mismatches += tiles != prim_start[i + 1] - prim_start[i];
  }

  // Buckets 0 .. num_tiles - 1 are the tiles, bucket num_tiles the sentinels.
  const int64_t buckets = num_tiles + 1;
  const int64_t chunks = std::max<int64_t>(
      1, std::min<int64_t>({int64_t(at::get_num_threads()), total / SORT_CHUNK_PAIRS, total / buckets}));
  const int64_t chunk_pairs = (total + chunks - 1) / chunks;
  // One chunk runs on the calling thread: waking the others costs more than a short list's sort.
  const auto for_each_chunk = [&](const auto& body) {
    if (chunks == 1) return body(0);
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) body(c);
    });
  };
  std::vector<int64_t> place(chunks * buckets, 0);  // counts, then each chunk's next place per bucket
  for_each_chunk([&](int64_t c) {
    int64_t* counts = place.data() + c * buckets;
    for (int64_t p = c * chunk_pairs; p < std::min(total, (c + 1) * chunk_pairs); ++p) ++counts[pair_tile[p]];
  });
  // Each chunk's first place in each bucket: the bucket's start plus what earlier chunks put there.
  int64_t next = 0;
  for (int64_t t = 0; t < buckets; ++t) {
    tile_start[t] = next;  // t = num_tiles: where the sentinels start
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t count = place[c * buckets + t];
      place[c * buckets + t] = next;
      next += count;
    }
  }
  for_each_chunk([&](int64_t c) {
    int64_t* cursor = place.data() + c * buckets;
    const int64_t p0 = c * chunk_pairs, p1 = std::min(total, p0 + chunk_pairs);
    // The primitive of pair p0: the last whose slots start at or before it.
    int64_t i = std::upper_bound(prim_start, prim_start + s.n + 1, p0) - prim_start - 1;
    for (int64_t p = p0; p < p1; ++p) {
      while (p >= prim_start[i + 1]) ++i;
      const int64_t at = cursor[pair_tile[p]]++;
      sorted_prim[at] = int32_t(i);
      pair_slot[at] = p;
    }
  });
  return mismatches;
}

// Pixel rectangle shared by a tile and a primitive's bounding box.
struct Rect {
  int x0, x1, y0, y1;
  bool empty() const { return x0 > x1 || y0 > y1; }
};

template <typename T>
inline Rect clip_to_tile(const PrimGeom<T>& g, const TileBox& b) {
  return Rect{std::max(b.px0, g.x0), std::min(b.px1, g.x1), std::max(b.py0, g.y0), std::min(b.py1, g.y1)};
}

// Step 3: front to back over each tile's list with early termination. Writes C [H, W, 3],
// alpha [H, W], the final transmittance [H, W] and, per pixel, how many list entries it
// consumed (the backward pass walks exactly those).
template <typename T>
void forward_tile_scalar(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const int64_t* tile_start,
                         const int32_t* sorted_prim, int64_t tile, T* colour_out, T* alpha_out, T* t_final_out,
                         int32_t* count_out) {
  const TileBox box = tile_box(s, tile);
  const int px0 = box.px0, py0 = box.py0;
  T trans[TILE_PIXELS], colour[TILE_PIXELS][3];
  int32_t consumed[TILE_PIXELS];
  std::fill(trans, trans + TILE_PIXELS, T(1));
  std::fill(&colour[0][0], &colour[0][0] + 3 * TILE_PIXELS, T(0));
  std::fill(consumed, consumed + TILE_PIXELS, -1);
  const int64_t begin = tile_start[tile], end = tile_start[tile + 1];
  const int32_t length = int32_t(end - begin);
  int active = (box.px1 - box.px0 + 1) * (box.py1 - box.py0 + 1);
  for (int32_t k = 0; k < length && active > 0; ++k) {
    const int32_t prim = sorted_prim[end - 1 - k];
    const PrimGeom<T>& g = geoms[prim];
    const Rect r = clip_to_tile(g, box);
    if (r.empty()) continue;
    const PrimLook<T> look = s.look(prim);
    for (int y = r.y0; y <= r.y1; ++y) {
      const T py = T(y) + T(PIXEL_CENTER);
      for (int x = r.x0; x <= r.x1; ++x) {
        const int i = (y - py0) * TILE_SIZE + (x - px0);
        if (consumed[i] >= 0) continue;
        PairValue<T> pv;
        if (!eval_pair(g, look, s.texels, T(x) + T(PIXEL_CENTER), py, pv)) continue;
        const T weight = pv.alpha * trans[i];
        for (int c = 0; c < 3; ++c) colour[i][c] += pv.col[c] * weight;
        trans[i] *= T(1) - pv.alpha;
        if (trans[i] < T(T_MIN)) {
          consumed[i] = k + 1;
          --active;
        }
      }
    }
  }
  for_each_pixel(box, s.width, [&](int i, int64_t o) {
    for (int c = 0; c < 3; ++c) colour_out[3 * o + c] = colour[i][c];
    alpha_out[o] = T(1) - trans[i];
    t_final_out[o] = trans[i];
    count_out[o] = consumed[i] >= 0 ? consumed[i] : length;
  });
}

#ifdef DIFFBMP_CPU_LANES
// The same tile, a vector of pixels of a row at a time (pixel_lanes.h): the same values bit for bit.
template <typename T>
void forward_tile_lanes(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const int64_t* tile_start,
                        const int32_t* sorted_prim, int64_t tile, T* colour_out, T* alpha_out, T* t_final_out,
                        int32_t* count_out) {
  constexpr int L = lane_count<T>(), N = TILE_PIXELS + L;
  const TileBox box = tile_box(s, tile);
  const int px0 = box.px0, py0 = box.py0;
  T trans[N], colour[3][N], done[N];  // done: 1 once the pixel stopped (exact), else 0
  int32_t consumed[N];
  std::fill(trans, trans + N, T(1));
  std::fill(&colour[0][0], &colour[0][0] + 3 * N, T(0));
  std::fill(done, done + N, T(0));
  std::fill(consumed, consumed + N, -1);
  const int64_t begin = tile_start[tile], end = tile_start[tile + 1];
  const int32_t length = int32_t(end - begin);
  int active = (box.px1 - box.px0 + 1) * (box.py1 - box.py0 + 1);
  const Vec<T> lane = iota<T>();
  for (int32_t k = 0; k < length && active > 0; ++k) {
    const int32_t prim = sorted_prim[end - 1 - k];
    const PrimGeom<T>& g = geoms[prim];
    if (k + 1 < length) {
      const PrimGeom<T>& next = geoms[sorted_prim[end - 2 - k]];
      const Rect rn = clip_to_tile(next, box);
      prefetch_texels(next, s.texels, rn.x0, rn.x1, rn.y0, rn.y1);
    }
    const Rect r = clip_to_tile(g, box);
    if (r.empty()) continue;
    const PrimLook<T> look = s.look(prim);
    for (int y = r.y0; y <= r.y1; ++y) {
      const T py = T(y) + T(PIXEL_CENTER);
      int x0 = r.x0, x1 = r.x1;
      support_span(g, py, x0, x1);
      for (int x = x0; x <= x1; x += L) {
        const int i = (y - py0) * TILE_SIZE + (x - px0);
        Mask<T> live = (lane < T(x1 - x + 1)) & (load(done + i) == T(0));
        if (!any<T>(live)) continue;
        const Vec<T> px = lane + (T(x) + T(PIXEL_CENTER));
        Vec<T> u, v;
        local_uv_lanes(g, px, py, u, v);
        live &= inside_support_lanes(g, u, v);
        if (!any<T>(live)) continue;
        const SampleLanes<T> smp = sample_lanes<T, false>(g, s.texels, u, v, live, s.sigma_e);
        live &= smp.cov != T(0);  // zero coverage changes neither colour nor transmittance
        if (!any<T>(live)) continue;
        Vec<T> alpha, col[3], inv_cov;
        pair_value_lanes(g, look, smp, alpha, col, inv_cov);
        const Vec<T> t = load(trans + i);
        const Vec<T> weight = alpha * t;
        for (int c = 0; c < 3; ++c) {
          const Vec<T> old = load(colour[c] + i);
          store(colour[c] + i, select<T>(live, old + col[c] * weight, old));
        }
        const Vec<T> t_new = t * (T(1) - alpha);
        store(trans + i, select<T>(live, t_new, t));
        const Mask<T> stopped = live & (t_new < T(T_MIN));
        if (any<T>(stopped)) {
          for (int l = 0; l < L; ++l) {
            if (!stopped[l]) continue;
            consumed[i + l] = k + 1;
            done[i + l] = T(1);
            --active;
          }
        }
      }
    }
  }
  for_each_pixel(box, s.width, [&](int i, int64_t o) {
    for (int c = 0; c < 3; ++c) colour_out[3 * o + c] = colour[c][i];
    alpha_out[o] = T(1) - trans[i];
    t_final_out[o] = trans[i];
    count_out[o] = consumed[i] >= 0 ? consumed[i] : length;
  });
}

#endif  // DIFFBMP_CPU_LANES

template <typename T>
void forward_tiles(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const int64_t* tile_start,
                   const int32_t* sorted_prim, T* colour_out, T* alpha_out, T* t_final_out, int32_t* count_out,
                   PixelPath path) {
  for_each_tile(s.num_tiles(), s.tiles_x(), [&](int64_t tile) {
#ifdef DIFFBMP_CPU_LANES
    if (path == PixelPath::lanes)
      return forward_tile_lanes(s, geoms, tile_start, sorted_prim, tile, colour_out, alpha_out, t_final_out, count_out);
#endif
    forward_tile_scalar(s, geoms, tile_start, sorted_prim, tile, colour_out, alpha_out, t_final_out, count_out);
  });
}

// Step 4: front to back again, rebuilding each pixel's transmittance exactly as the forward
// pass did; every (tile, primitive) pair writes its own gradient row, so the result does not
// depend on the number of threads. pair_grads: [P, GRAD_SLOTS], uninitialised on entry: the
// pairs no pixel reached write zero rows, so the rows are written once and read once.
template <typename T>
inline void zero_pair_rows(const int64_t* pair_slot, int64_t first, int64_t last, T* pair_grads) {
  for (int64_t p = first; p < last; ++p) std::fill_n(pair_grads + pair_slot[p] * GRAD_SLOTS, GRAD_SLOTS, T(0));
}

template <typename T>
void backward_tile_scalar(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const int64_t* tile_start,
                          const int32_t* sorted_prim, const int64_t* pair_slot, const T* grad_colour,
                          const T* grad_alpha, const T* colour, const T* t_final, const int32_t* count,
                          int64_t tile, T* pair_grads) {
  const TileBox box = tile_box(s, tile);
  const int px0 = box.px0, py0 = box.py0;
  PixelGrad<T> pix[TILE_PIXELS];
  T trans[TILE_PIXELS], accumulated[TILE_PIXELS][3];
  int32_t consumed[TILE_PIXELS];
  int32_t longest = 0;
  for_each_pixel(box, s.width, [&](int i, int64_t o) {
    for (int c = 0; c < 3; ++c) {
      pix[i].g[c] = grad_colour[3 * o + c];
      pix[i].colour[c] = colour[3 * o + c];
      accumulated[i][c] = T(0);
    }
    pix[i].g_alpha = grad_alpha[o];
    pix[i].t_final = t_final[o];
    trans[i] = T(1);
    consumed[i] = count[o];
    longest = std::max(longest, consumed[i]);
  });
  const int64_t end = tile_start[tile + 1];
  for (int32_t k = 0; k < longest; ++k) {
    const int64_t pair = end - 1 - k;
    const int32_t prim = sorted_prim[pair];
    const PrimGeom<T>& g = geoms[prim];
    const Rect r = clip_to_tile(g, box);
    if (r.empty()) {
      zero_pair_rows(pair_slot, pair, pair + 1, pair_grads);
      continue;
    }
    const PrimLook<T> look = s.look(prim);
    T grad[GRAD_SLOTS] = {};
    for (int y = r.y0; y <= r.y1; ++y) {
      const T py = T(y) + T(PIXEL_CENTER);
      for (int x = r.x0; x <= r.x1; ++x) {
        const int i = (y - py0) * TILE_SIZE + (x - px0);
        if (k >= consumed[i]) continue;
        backward_pair(g, look, s.texels, T(x) + T(PIXEL_CENTER), py, s.sigma_e, pix[i], trans[i], accumulated[i], grad);
      }
    }
    T* out = pair_grads + pair_slot[pair] * GRAD_SLOTS;
    for (int q = 0; q < GRAD_SLOTS; ++q) out[q] = grad[q];
  }
  zero_pair_rows(pair_slot, tile_start[tile], end - longest, pair_grads);  // behind every pixel's last entry
}

#ifdef DIFFBMP_CPU_LANES
// The same tile, a vector of pixels of a row at a time (pixel_lanes.h); each pair's gradient is
// summed per lane, then over the lanes in order (deterministic, and equal to the scalar sum up
// to rounding).
template <typename T>
void backward_tile_lanes(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const int64_t* tile_start,
                         const int32_t* sorted_prim, const int64_t* pair_slot, const T* grad_colour,
                         const T* grad_alpha, const T* colour, const T* t_final, const int32_t* count, int64_t tile,
                         T* pair_grads) {
  constexpr int L = lane_count<T>();
  const TileBox box = tile_box(s, tile);
  const int px0 = box.px0, py0 = box.py0;
  TileGradState<T, TILE_PIXELS> st;
  std::fill(&st.g[0][0], &st.g[0][0] + 3 * st.N, T(0));
  std::fill(&st.colour[0][0], &st.colour[0][0] + 3 * st.N, T(0));
  std::fill(&st.accumulated[0][0], &st.accumulated[0][0] + 3 * st.N, T(0));
  std::fill(st.g_alpha, st.g_alpha + st.N, T(0));
  std::fill(st.t_final, st.t_final + st.N, T(0));
  std::fill(st.trans, st.trans + st.N, T(1));
  std::fill(st.consumed, st.consumed + st.N, T(0));
  int32_t longest = 0;
  for_each_pixel(box, s.width, [&](int i, int64_t o) {
    for (int c = 0; c < 3; ++c) {
      st.g[c][i] = grad_colour[3 * o + c];
      st.colour[c][i] = colour[3 * o + c];
    }
    st.g_alpha[i] = grad_alpha[o];
    st.t_final[i] = t_final[o];
    st.consumed[i] = T(count[o]);
    longest = std::max(longest, count[o]);
  });
  // The lanes compare list positions as T: beyond 2^24 entries float no longer holds them
  // exactly, so such a tile (sixteen million primitives deep) takes the scalar path.
  if (longest >= (int64_t(1) << 24) && sizeof(T) == 4)
    return backward_tile_scalar(s, geoms, tile_start, sorted_prim, pair_slot, grad_colour, grad_alpha, colour, t_final,
                                count, tile, pair_grads);
  const int64_t end = tile_start[tile + 1];
  const Vec<T> lane = iota<T>();
  for (int32_t k = 0; k < longest; ++k) {
    const int64_t pair = end - 1 - k;
    const int32_t prim = sorted_prim[pair];
    const PrimGeom<T>& g = geoms[prim];
    if (k + 1 < longest) {
      const PrimGeom<T>& next = geoms[sorted_prim[pair - 1]];
      const Rect rn = clip_to_tile(next, box);
      prefetch_texels(next, s.texels, rn.x0, rn.x1, rn.y0, rn.y1);
    }
    const Rect r = clip_to_tile(g, box);
    if (r.empty()) {
      zero_pair_rows(pair_slot, pair, pair + 1, pair_grads);
      continue;
    }
    const PrimLook<T> look = s.look(prim);
    Vec<T> grad[GRAD_SLOTS];
    for (int q = 0; q < GRAD_SLOTS; ++q) grad[q] = Vec<T>{};
    for (int y = r.y0; y <= r.y1; ++y) {
      const T py = T(y) + T(PIXEL_CENTER);
      int x0 = r.x0, x1 = r.x1;
      support_span(g, py, x0, x1);
      for (int x = x0; x <= x1; x += L) {
        const int i = (y - py0) * TILE_SIZE + (x - px0);
        const Mask<T> live = (lane < T(x1 - x + 1)) & (T(k) < load(st.consumed + i));
        if (!any<T>(live)) continue;
        backward_lanes(g, look, s.texels, lane + (T(x) + T(PIXEL_CENTER)), py, s.sigma_e, live, i, st, grad);
      }
    }
    T* out = pair_grads + pair_slot[pair] * GRAD_SLOTS;
    for (int q = 0; q < GRAD_SLOTS; ++q) out[q] = sum_lanes<T>(grad[q]);
  }
  zero_pair_rows(pair_slot, tile_start[tile], end - longest, pair_grads);  // behind every pixel's last entry
}

#endif  // DIFFBMP_CPU_LANES

template <typename T>
void backward_tiles(const SceneView<T>& s, const std::vector<PrimGeom<T>>& geoms, const int64_t* tile_start,
                    const int32_t* sorted_prim, const int64_t* pair_slot, const T* grad_colour, const T* grad_alpha,
                    const T* colour, const T* t_final, const int32_t* count, int64_t num_pairs, T* pair_grads,
                    PixelPath path) {
  // The sentinel pairs (binning.h) lie in no tile: their rows are zero.
  zero_pair_rows(pair_slot, tile_start[s.num_tiles()], num_pairs, pair_grads);
  for_each_tile(s.num_tiles(), s.tiles_x(), [&](int64_t tile) {
#ifdef DIFFBMP_CPU_LANES
    if (path == PixelPath::lanes)
      return backward_tile_lanes(s, geoms, tile_start, sorted_prim, pair_slot, grad_colour, grad_alpha, colour, t_final,
                                 count, tile, pair_grads);
#endif
    backward_tile_scalar(s, geoms, tile_start, sorted_prim, pair_slot, grad_colour, grad_alpha, colour, t_final,
                           count, tile, pair_grads);
  });
}

// Step 5: each primitive sums its pairs' rows, in tile order (pixel.h, sum_pair_rows).
template <typename T>
void reduce_pair_grads(int64_t n, const int64_t* prim_start, const T* pair_grads, T* grads) {
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      for (int q = 0; q < GRAD_SLOTS; ++q)
        grads[i * GRAD_SLOTS + q] = sum_pair_rows(pair_grads, prim_start[i], prim_start[i + 1], q);
  });
}

}  // namespace cpu
}  // namespace diffbmp
