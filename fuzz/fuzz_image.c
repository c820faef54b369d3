/*
 * fuzz_image.c - libFuzzer target for the image decoders (JPEG + EXIF, PNG, PGM/PPM): any byte
 * string must give FP_OK with a sane image or an error status, never a crash, hang or leak.
 * The 4 MP limit keeps each run's memory small so the fuzzer explores parsers, not allocators;
 * every other input also exercises the DCT-scaling path. Seeds: fuzz/corpus/fuzz_image/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "facepay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fp_image_limits lim = fp_image_limits_default();
    lim.max_pixels = 4 * 1000 * 1000;
    lim.target_max_side = size > 0 && (data[size - 1] & 1) ? 64 : 0;
    fp_image img;
    if (fp_image_decode(data, size, &lim, &img) == FP_OK) {
        if (img.width <= 0 || img.height <= 0 || !img.rgb ||
            (int64_t)img.width * img.height > lim.max_pixels)
            abort();
        /* touch every byte so ASan/MSan see any short allocation */
        volatile uint8_t acc = 0;
        for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) acc ^= img.rgb[i];
        (void)acc;
        fp_image_release(&img);
    } else if (img.rgb) {
        abort(); /* failures must not hand out pixels */
    }
    return 0;
}
