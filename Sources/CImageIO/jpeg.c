// JPEG decode through libjpeg(-turbo) with errors turned into return codes (see CImageIO.h).
#include "CImageIO.h"

#include <stdio.h>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *message;
    size_t message_size;
} jpeg_errors;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    e->base.format_message(cinfo, text);
    snprintf(e->message, e->message_size, "JPEG: %s", text);
    longjmp(e->jump, 1);
}

// libjpeg reports corrupt or truncated data as warnings and fills the gap with grey; a purification
// service must not classify invented pixels, so every warning is fatal.
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_on_error(cinfo);
}

static int jpeg_begin(struct jpeg_decompress_struct *cinfo, jpeg_errors *err, const uint8_t *data, size_t size) {
    cinfo->err = jpeg_std_error(&err->base);
    err->base.error_exit = jpeg_on_error;
    err->base.emit_message = jpeg_on_message;
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    return jpeg_read_header(cinfo, TRUE);
}

int lgap_jpeg_header(const uint8_t *data, size_t size, int32_t *width, int32_t *height, char *message, size_t message_size) {
    *width = 0;
    *height = 0;
    struct jpeg_decompress_struct cinfo;
    jpeg_errors err;
    err.message = message;
    err.message_size = message_size;
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        snprintf(message, message_size, "JPEG: bad signature");
        return LGAP_IMG_CORRUPT;
    }
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_CORRUPT;
    }
    jpeg_begin(&cinfo, &err, data, size);
    *width = (int32_t)cinfo.image_width;
    *height = (int32_t)cinfo.image_height;
    // Refused at the door, like the decoder refuses them: four-channel JPEG (Adobe CMYK/YCCK).
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(message, message_size, "JPEG: CMYK/YCCK colour space is not supported (convert to RGB or greyscale)");
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_UNSUPPORTED;
    }
    jpeg_destroy_decompress(&cinfo);
    return LGAP_IMG_OK;
}

int lgap_jpeg_decode(const uint8_t *data, size_t size, int64_t max_side, int64_t max_pixels, lgap_image *out) {
    memset(out, 0, sizeof(*out));
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        snprintf(out->message, sizeof(out->message), "JPEG: bad signature");
        return LGAP_IMG_CORRUPT;
    }
    struct jpeg_decompress_struct cinfo;
    jpeg_errors err;
    err.message = out->message;
    err.message_size = sizeof(out->message);
    uint8_t *volatile pixels = NULL;
    if (setjmp(err.jump)) {
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_CORRUPT;
    }
    jpeg_begin(&cinfo, &err, data, size);
    int64_t w = cinfo.image_width, h = cinfo.image_height;
    if (w > max_side || h > max_side || w * h > max_pixels) {
        snprintf(out->message, sizeof(out->message), "JPEG: %lldx%lld exceeds the limit (side %lld, pixels %lld)",
                 (long long)w, (long long)h, (long long)max_side, (long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_TOO_LARGE;
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(out->message, sizeof(out->message), "JPEG: CMYK/YCCK colour is not supported");
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_UNSUPPORTED;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        snprintf(out->message, sizeof(out->message), "JPEG: %d output components, expected 3", cinfo.output_components);
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_UNSUPPORTED;
    }
    size_t stride = (size_t)cinfo.output_width * 3;
    pixels = malloc(stride * cinfo.output_height);
    if (!pixels) {
        snprintf(out->message, sizeof(out->message), "JPEG: out of memory");
        jpeg_destroy_decompress(&cinfo);
        return LGAP_IMG_NOMEM;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    out->width = (int32_t)cinfo.output_width;
    out->height = (int32_t)cinfo.output_height;
    out->pixels = pixels;
    jpeg_destroy_decompress(&cinfo);
    return LGAP_IMG_OK;
}
