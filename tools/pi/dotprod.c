/* One SDOT instruction (Armv8.2 dotprod): a Cortex-A76 runs it, a Cortex-A72 does not. pi_check.sh runs it under
 * both QEMU_CPU settings first, so that the check knows qemu enforces the chosen core's instruction set. */
#include <arm_neon.h>
#include <stdio.h>

int main(void) {
    int8x16_t a = vdupq_n_s8(1), b = vdupq_n_s8(2);
    int32x4_t sum = vdotq_s32(vdupq_n_s32(0), a, b);
    printf("%d\n", vgetq_lane_s32(sum, 0));
    return 0;
}
