// PNG decode/encode through libpng with errors turned into return codes (see CImageIO.h).
#include "CImageIO.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char *message;
    size_t message_size;
} png_reader;

static void png_read_mem(png_structp png, png_bytep out, png_size_t length) {
    png_reader *r = (png_reader *)png_get_io_ptr(png);
    if (r->offset + length > r->size) {
        png_error(png, "truncated PNG data");
    }
    memcpy(out, r->data + r->offset, length);
    r->offset += length;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_reader *r = (png_reader *)png_get_error_ptr(png);
    if (r && r->message) snprintf(r->message, r->message_size, "PNG: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int png_open(png_reader *r, png_structp *png, png_infop *info) {
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_on_error, png_on_warning);
    if (!*png) return LGAP_IMG_NOMEM;
    *info = png_create_info_struct(*png);
    if (!*info) {
        png_destroy_read_struct(png, NULL, NULL);
        return LGAP_IMG_NOMEM;
    }
    png_set_read_fn(*png, r, png_read_mem);
    // Bound ancillary chunk memory (iCCP, zTXt, ...) so a small file cannot make us allocate much.
    png_set_chunk_malloc_max(*png, 8 << 20);
    return LGAP_IMG_OK;
}

int lgap_png_header(const uint8_t *data, size_t size, int32_t *width, int32_t *height, char *message, size_t message_size) {
    *width = 0;
    *height = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(message, message_size, "PNG: bad signature");
        return LGAP_IMG_CORRUPT;
    }
    png_reader r = {data, size, 0, message, message_size};
    png_structp png;
    png_infop info;
    int rc = png_open(&r, &png, &info);
    if (rc) return rc;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return LGAP_IMG_CORRUPT;
    }
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    *width = (int32_t)png_get_image_width(png, info);
    *height = (int32_t)png_get_image_height(png, info);
    png_destroy_read_struct(&png, &info, NULL);
    return LGAP_IMG_OK;
}

int lgap_png_decode(const uint8_t *data, size_t size, int64_t max_side, int64_t max_pixels, lgap_image *out) {
    memset(out, 0, sizeof(*out));
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(out->message, sizeof(out->message), "PNG: bad signature");
        return LGAP_IMG_CORRUPT;
    }
    png_reader r = {data, size, 0, out->message, sizeof(out->message)};
    png_structp png;
    png_infop info;
    int rc = png_open(&r, &png, &info);
    if (rc) return rc;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile pixels = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return LGAP_IMG_CORRUPT;
    }
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((int64_t)w > max_side || (int64_t)h > max_side || (int64_t)w * (int64_t)h > max_pixels) {
        snprintf(out->message, sizeof(out->message), "PNG: %ux%u exceeds the limit (side %lld, pixels %lld)",
                 (unsigned)w, (unsigned)h, (long long)max_side, (long long)max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return LGAP_IMG_TOO_LARGE;
    }
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        snprintf(out->message, sizeof(out->message), "PNG: unexpected row size after conversion to RGB");
        png_destroy_read_struct(&png, &info, NULL);
        return LGAP_IMG_UNSUPPORTED;
    }
    pixels = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) {
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(out->message, sizeof(out->message), "PNG: out of memory");
        return LGAP_IMG_NOMEM;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->width = (int32_t)w;
    out->height = (int32_t)h;
    out->pixels = pixels;
    return LGAP_IMG_OK;
}

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    int failed;
} png_writer;

static void png_write_mem(png_structp png, png_bytep in, png_size_t length) {
    png_writer *w = (png_writer *)png_get_io_ptr(png);
    if (w->size + length > w->capacity) {
        size_t cap = w->capacity ? w->capacity * 2 : 4096;
        while (cap < w->size + length) cap *= 2;
        uint8_t *grown = realloc(w->data, cap);
        if (!grown) {
            w->failed = 1;
            png_error(png, "out of memory");
        }
        w->data = grown;
        w->capacity = cap;
    }
    memcpy(w->data + w->size, in, length);
    w->size += length;
}

static void png_flush_mem(png_structp png) { (void)png; }

int lgap_png_encode(const uint8_t *rgb, int32_t width, int32_t height, uint8_t **out, size_t *out_size,
                    char *message, size_t message_size) {
    *out = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0) {
        snprintf(message, message_size, "PNG: cannot encode a %dx%d image", width, height);
        return LGAP_IMG_UNSUPPORTED;
    }
    png_reader err = {NULL, 0, 0, message, message_size};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    if (!png) return LGAP_IMG_NOMEM;
    png_infop info = png_create_info_struct(png);
    png_writer w = {NULL, 0, 0, 0};
    if (!info || setjmp(png_jmpbuf(png))) {
        free(w.data);
        png_destroy_write_struct(&png, &info);
        return w.failed ? LGAP_IMG_NOMEM : LGAP_IMG_CORRUPT;
    }
    png_set_write_fn(png, &w, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int32_t y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * width * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = w.data;
    *out_size = w.size;
    return LGAP_IMG_OK;
}

void lgap_image_free(lgap_image *image) {
    free(image->pixels);
    image->pixels = NULL;
}

void lgap_buffer_free(void *buffer) { free(buffer); }
