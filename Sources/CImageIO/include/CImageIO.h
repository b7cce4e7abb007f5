// libpng and libjpeg-turbo behind setjmp-safe wrappers: both libraries report errors by longjmp,
// which Swift cannot catch, so every call that can fail goes through here and comes back as an error
// code plus a message. Pixels are 8-bit RGB, row-major, allocated with malloc (free with lgap_image_free).
#ifndef LGAP_CIMAGEIO_H
#define LGAP_CIMAGEIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LGAP_IMG_OK = 0,
    LGAP_IMG_CORRUPT = 1,       // the library rejected the data (bad header, CRC, truncated, ...)
    LGAP_IMG_TOO_LARGE = 2,     // header dimensions exceed the caller's limits (checked before allocation)
    LGAP_IMG_UNSUPPORTED = 3,   // a valid file of a kind we do not take (e.g. CMYK JPEG)
    LGAP_IMG_NOMEM = 4,
};

typedef struct {
    int32_t width;
    int32_t height;
    uint8_t *pixels;            // width * height * 3 bytes, or NULL
    char message[256];          // set when the call fails
} lgap_image;

/// Reads only the header: width and height (0 on failure, with a message).
int lgap_png_header(const uint8_t *data, size_t size, int32_t *width, int32_t *height, char *message, size_t message_size);
int lgap_jpeg_header(const uint8_t *data, size_t size, int32_t *width, int32_t *height, char *message, size_t message_size);

/// Decodes to RGB8. Refuses (LGAP_IMG_TOO_LARGE) before allocating when a side exceeds max_side or
/// width*height exceeds max_pixels. PNG: palette/grey expanded, 16-bit reduced to the high byte and
/// alpha dropped (what PIL's convert("RGB") does). JPEG: libjpeg defaults (ISLOW DCT, fancy
/// upsampling), as PIL decodes; any libjpeg warning (truncated or corrupt data) is an error.
int lgap_png_decode(const uint8_t *data, size_t size, int64_t max_side, int64_t max_pixels, lgap_image *out);
int lgap_jpeg_decode(const uint8_t *data, size_t size, int64_t max_side, int64_t max_pixels, lgap_image *out);

/// Encodes RGB8 pixels as PNG into a malloc'd buffer (*out, *out_size); free with lgap_buffer_free.
int lgap_png_encode(const uint8_t *rgb, int32_t width, int32_t height, uint8_t **out, size_t *out_size,
                    char *message, size_t message_size);

void lgap_image_free(lgap_image *image);
void lgap_buffer_free(void *buffer);

#ifdef __cplusplus
}
#endif
#endif
