/*
 * UpsampleArgmax, CPU kernel: labels = argmax_c(resize_bilinear(logits, H×W)), without the
 * resized logits.
 *
 * Plain C99 + pthreads, no Python C-API; loaded with ctypes by icnet_deploy/plugins.py.
 * It reproduces icnet_deploy.upsample.bilinear_argmax label for label:
 *
 *   1. coarse labels: a running maximum over the classes of each source pixel (the first
 *      maximum wins, NaN handled as numpy's maximum/greater do);
 *   2. an output pixel whose four source pixels share one coarse label gets that label;
 *   3. every other pixel is interpolated over all classes, in float32, in the reference's
 *      order:  top = a + (b - a)·fx,  bottom = c + (d - c)·fx,  v = top + (bottom - top)·fy,
 *      and argmax'ed (the first maximum wins, or the first NaN, as ndarray.argmax).
 *
 * The taps (source rows/columns and weights per output row/column) come from the caller:
 * they are computed once per axis by the reference's own function, so both share one rule.
 * The library must be compiled with -ffp-contract=off (no fused multiply-add: it would round
 * differently from numpy) and without -ffast-math.
 *
 * Threads split the source rows (step 1) and the output rows (steps 2-3) into contiguous
 * blocks. Inner loops run over one row with unit stride or one gather, so -O3 vectorises them.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UA_VERSION "1"
#define UA_MAX_THREADS 256
#define UA_NONUNIFORM 0xFF /* coarse cell whose four corners disagree (labels are < 255) */

/* the hot loops in an AVX-512, an AVX2 and a baseline build, picked at load time (GCC/clang ifunc):
 * one library runs at full width on the machine it was built on and still runs on an older one */
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define UA_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define UA_CLONES 1
#endif
#endif
#ifndef UA_HOT
#define UA_HOT
#endif

#ifndef UA_SOURCE_SHA256
#define UA_SOURCE_SHA256 "unknown"
#endif

const char *upsample_argmax_version(void) { return UA_VERSION; }
const char *upsample_argmax_source_sha256(void) { return UA_SOURCE_SHA256; }

/* which build of the hot loops runs here: the same test the loader's resolver makes */
const char *upsample_argmax_isa(void) {
#ifdef UA_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3 (AVX2)";
    return "x86-64 (SSE2)";
#else
    return "compiler default";
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* a parallel for over [0, n): each thread gets one contiguous block                           */
/* ------------------------------------------------------------------------------------------ */
typedef void (*ua_block_fn)(void *ctx, int64_t begin, int64_t end, float *scratch);

typedef struct {
    ua_block_fn fn;
    void *ctx;
    int64_t begin, end;
    size_t scratch_floats;
    int failed;
} ua_task;

static void *ua_run_task(void *arg) {
    ua_task *t = (ua_task *)arg;
    float *scratch = NULL;
    if (t->scratch_floats) {
        scratch = (float *)malloc(t->scratch_floats * sizeof(float));
        if (!scratch) {
            t->failed = 1;
            return NULL;
        }
    }
    t->fn(t->ctx, t->begin, t->end, scratch);
    free(scratch);
    return NULL;
}

/* 0 on success, -1 when memory or a thread could not be had */
static int ua_parallel(ua_block_fn fn, void *ctx, int64_t n, int threads, size_t scratch_floats) {
    ua_task tasks[UA_MAX_THREADS];
    pthread_t ids[UA_MAX_THREADS];
    int started[UA_MAX_THREADS];
    int k, failed = 0;
    if (n <= 0)
        return 0;
    if (threads < 1)
        threads = 1;
    if (threads > UA_MAX_THREADS)
        threads = UA_MAX_THREADS;
    if (threads > n)
        threads = (int)n;
    for (k = 0; k < threads; k++) {
        tasks[k].fn = fn;
        tasks[k].ctx = ctx;
        tasks[k].begin = n * k / threads;
        tasks[k].end = n * (k + 1) / threads;
        tasks[k].scratch_floats = scratch_floats;
        tasks[k].failed = 0;
        started[k] = 0;
    }
    /* the calling thread takes block 0 itself */
    for (k = 1; k < threads; k++)
        started[k] = pthread_create(&ids[k], NULL, ua_run_task, &tasks[k]) == 0;
    ua_run_task(&tasks[0]);
    for (k = 1; k < threads; k++) {
        if (started[k])
            pthread_join(ids[k], NULL);
        else
            ua_run_task(&tasks[k]); /* no thread: run that block here */
    }
    for (k = 0; k < threads; k++)
        failed |= tasks[k].failed;
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* float16 → float32 (exact; subnormals, infinities and NaN included)                          */
/* ------------------------------------------------------------------------------------------ */
static inline float ua_half_to_float(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v;
    uint32_t em = h & 0x7fffu;
    v.u = em << 13;
    v.f *= 0x1p112f; /* rebias the exponent; exact for normals and subnormals */
    if (em >= 0x7c00u)
        v.u |= 0x7f800000u; /* infinity / NaN keep their payload */
    v.u |= (uint32_t)(h & 0x8000u) << 16;
    return v.f;
}

typedef struct {
    const uint16_t *src;
    float *dst;
} ua_convert_ctx;

static void ua_convert_block(void *p, int64_t begin, int64_t end, float *scratch) {
    const ua_convert_ctx *c = (const ua_convert_ctx *)p;
    int64_t i;
    (void)scratch;
    for (i = begin; i < end; i++)
        c->dst[i] = ua_half_to_float(c->src[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* the kernel                                                                                  */
/* ------------------------------------------------------------------------------------------ */
typedef struct {
    const float *logits; /* N×C×h×w */
    int64_t n, c, h, w, out_h, out_w;
    const int32_t *y0, *y1, *x0, *x1;
    const float *wy, *wx;
    const int64_t *row_begin; /* h + 1: the first output row whose first source row is ≥ i */
    uint8_t *coarse;  /* N×h×w: coarse labels */
    uint8_t *uniform; /* N×h×w: the label of cell (i, j) if its four corners agree, else UA_NONUNIFORM */
    uint8_t *labels;  /* N×H×W */
} ua_ctx;

/* step 1, one source row per item: the running maximum over the classes */
UA_HOT static void ua_coarse_block(void *p, int64_t begin, int64_t end, float *best) {
    const ua_ctx *k = (const ua_ctx *)p;
    const int64_t w = k->w, hw = k->h * k->w;
    int64_t row, j, c;
    for (row = begin; row < end; row++) {
        const int64_t img = row / k->h, i = row % k->h;
        const float *base = k->logits + img * k->c * hw + i * w;
        uint8_t *lab = k->coarse + img * hw + i * w;
        memcpy(best, base, (size_t)w * sizeof(float));
        memset(lab, 0, (size_t)w);
        for (c = 1; c < k->c; c++) {
            const float *plane = base + c * hw;
            for (j = 0; j < w; j++) {
                const float v = plane[j], b = best[j];
                /* numpy: labels where v > best; best = maximum(best, v), which keeps a NaN */
                lab[j] = v > b ? (uint8_t)c : lab[j];
                best[j] = (v > b || v != v) ? v : b;
            }
        }
    }
}

/* step 1b, one source row per item: is each cell (i, j)…(i+1, j+1) one label? (edges clamped) */
UA_HOT static void ua_uniform_block(void *p, int64_t begin, int64_t end, float *scratch) {
    const ua_ctx *k = (const ua_ctx *)p;
    const int64_t w = k->w, h = k->h, hw = h * w;
    int64_t row, j;
    (void)scratch;
    for (row = begin; row < end; row++) {
        const int64_t img = row / h, i = row % h;
        const uint8_t *top = k->coarse + img * hw + i * w;
        const uint8_t *bottom = k->coarse + img * hw + (i + 1 < h ? i + 1 : i) * w;
        uint8_t *u = k->uniform + img * hw + i * w;
        for (j = 0; j < w; j++) {
            const int64_t jr = j + 1 < w ? j + 1 : j;
            const uint8_t a = top[j];
            u[j] = (a == top[jr] && a == bottom[j] && a == bottom[jr]) ? a : (uint8_t)UA_NONUNIFORM;
        }
    }
}

/* steps 2-3, one source row per item: the output rows whose first source row it is.
 *
 * Those rows share their source rows (r0, r1) and so their non-uniform columns, and the
 * horizontal interpolation of both source rows at those columns (the reference's `top` and
 * `bottom` before the vertical step): computed once per class here, then each output row only
 * adds its vertical step, with unit-stride loads. At most UA_ROWS output rows are done at once
 * (bounding the scratch memory when one source row spans many output rows). */
#define UA_ROWS 8

UA_HOT static void ua_output_block(void *p, int64_t begin, int64_t end, float *scratch) {
    const ua_ctx *k = (const ua_ctx *)p;
    const int64_t w = k->w, hw = k->h * k->w, W = k->out_w, C = k->c;
    /* scratch, W floats each: columns, their taps and weight, top and bottom of one class,
     * then UA_ROWS running maxima and UA_ROWS labels */
    int32_t *idx = (int32_t *)scratch;
    int32_t *left = (int32_t *)(scratch + W);
    int32_t *right = (int32_t *)(scratch + 2 * W);
    float *fx = scratch + 3 * W;
    float *top = scratch + 4 * W;
    float *bottom = scratch + 5 * W;
    float *best = scratch + 6 * W;
    int32_t *lab = (int32_t *)(scratch + (6 + UA_ROWS) * W);
    int64_t item, X, m, c, r;
    for (item = begin; item < end; item++) {
        const int64_t img = item / k->h, i = item % k->h;
        const int64_t first = k->row_begin[i], last = k->row_begin[i + 1]; /* output rows [first, last) */
        const uint8_t *u = k->uniform + img * hw + i * w;
        uint8_t *out0, *labels = k->labels + img * k->out_h * W;
        int64_t count = 0, Y0;
        if (first >= last)
            continue;
        out0 = labels + first * W;
        for (X = 0; X < W; X++)
            out0[X] = u[k->x0[X]];
        for (X = 0; X < W; X++)
            if (out0[X] == UA_NONUNIFORM)
                idx[count++] = (int32_t)X;
        for (r = first + 1; r < last; r++)
            memcpy(labels + r * W, out0, (size_t)W);
        if (!count)
            continue;
        for (m = 0; m < count; m++) {
            left[m] = k->x0[idx[m]];
            right[m] = k->x1[idx[m]];
            fx[m] = k->wx[idx[m]];
        }
        for (Y0 = first; Y0 < last; Y0 += UA_ROWS) {
            const int64_t rows = last - Y0 < UA_ROWS ? last - Y0 : UA_ROWS;
            for (c = 0; c < C; c++) {
                const float *src = k->logits + (img * C + c) * hw;
                const float *s0 = src + i * w, *s1 = src + k->y1[first] * w;
                for (m = 0; m < count; m++) {
                    const float a = s0[left[m]], b = s0[right[m]];
                    const float d0 = s1[left[m]], d1 = s1[right[m]];
                    top[m] = a + (b - a) * fx[m];
                    bottom[m] = d0 + (d1 - d0) * fx[m];
                }
                for (r = 0; r < rows; r++) {
                    const float fy = k->wy[Y0 + r];
                    float *bst = best + r * W;
                    int32_t *lb = lab + r * W;
                    if (c == 0) {
                        for (m = 0; m < count; m++) {
                            bst[m] = top[m] + (bottom[m] - top[m]) * fy;
                            lb[m] = 0;
                        }
                        continue;
                    }
                    for (m = 0; m < count; m++) {
                        const float v = top[m] + (bottom[m] - top[m]) * fy, bm = bst[m];
                        /* ndarray.argmax: the first maximum, or the first NaN */
                        const int take = v > bm || (v != v && bm == bm);
                        bst[m] = take ? v : bm;
                        lb[m] = take ? (int32_t)c : lb[m];
                    }
                }
            }
            for (r = 0; r < rows; r++) {
                uint8_t *out = labels + (Y0 + r) * W;
                const int32_t *lb = lab + r * W;
                for (m = 0; m < count; m++)
                    out[idx[m]] = (uint8_t)lb[m];
            }
        }
    }
}

/*
 * logits: N×C×h×w float32 (dtype 0) or float16 (dtype 1), C-contiguous, 1 ≤ C ≤ 255.
 * y0/y1/wy: out_h taps, x0/x1/wx: out_w taps (first, second source index, weight of the second).
 * labels: N×out_h×out_w uint8. Returns 0, or -1 for bad arguments / no memory.
 */
int upsample_argmax(const void *logits, int dtype, int64_t n, int64_t c, int64_t h, int64_t w,
                    int64_t out_h, int64_t out_w, const int32_t *y0, const int32_t *y1, const float *wy,
                    const int32_t *x0, const int32_t *x1, const float *wx, uint8_t *labels, int threads) {
    ua_ctx k;
    float *converted = NULL;
    uint8_t *coarse = NULL;
    int64_t *row_begin = NULL, i, Y;
    int status = -1;
    if (!logits || !labels || n < 1 || c < 1 || c > 255 || h < 1 || w < 1 || out_h < 1 || out_w < 1 ||
        out_w > INT32_MAX || (dtype != 0 && dtype != 1))
        return -1;
    for (Y = 0; Y < out_h; Y++) /* taps in range, first source rows non-decreasing (as half-pixel taps are) */
        if (y0[Y] < 0 || y0[Y] >= h || y1[Y] != (y0[Y] + 1 < h ? y0[Y] + 1 : y0[Y]) || (Y && y0[Y] < y0[Y - 1]))
            return -1;
    for (Y = 0; Y < out_w; Y++)
        if (x0[Y] < 0 || x0[Y] >= w || x1[Y] != (x0[Y] + 1 < w ? x0[Y] + 1 : x0[Y]))
            return -1;
    if (dtype == 1) {
        ua_convert_ctx cc;
        converted = (float *)malloc((size_t)(n * c * h * w) * sizeof(float));
        if (!converted)
            return -1;
        cc.src = (const uint16_t *)logits;
        cc.dst = converted;
        if (ua_parallel(ua_convert_block, &cc, n * c * h * w, threads, 0))
            goto done;
    }
    coarse = (uint8_t *)malloc((size_t)(2 * n * h * w));
    row_begin = (int64_t *)malloc((size_t)(h + 1) * sizeof(int64_t));
    if (!coarse || !row_begin)
        goto done;
    k.logits = converted ? converted : (const float *)logits;
    k.n = n, k.c = c, k.h = h, k.w = w, k.out_h = out_h, k.out_w = out_w;
    k.y0 = y0, k.y1 = y1, k.wy = wy, k.x0 = x0, k.x1 = x1, k.wx = wx;
    k.coarse = coarse;
    k.uniform = coarse + n * h * w;
    k.labels = labels;
    if (ua_parallel(ua_coarse_block, &k, n * h, threads, (size_t)w))
        goto done;
    if (h == out_h && w == out_w) { /* same size: the coarse labels, as the reference returns them */
        memcpy(labels, coarse, (size_t)(n * h * w));
        status = 0;
        goto done;
    }
    if (ua_parallel(ua_uniform_block, &k, n * h, threads, 0))
        goto done;
    for (i = 0, Y = 0; i <= h; i++) {
        while (Y < out_h && y0[Y] < i)
            Y++;
        row_begin[i] = Y;
    }
    k.row_begin = row_begin;
    if (ua_parallel(ua_output_block, &k, n * h, threads, (size_t)((6 + 2 * UA_ROWS) * out_w)))
        goto done;
    status = 0;
done:
    free(row_begin);
    free(coarse);
    free(converted);
    return status;
}
