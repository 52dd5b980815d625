# Sourced by the shell-script tiers (package, sdk): skip with exit 77 and a
# reason, or fail instead under USCHED_REQUIRE_KERNEL=1 (CI), as the kernel
# tier does (support/kernel.h).
skip() {
  if [ "${USCHED_REQUIRE_KERNEL:-}" = 1 ]; then echo "FAILED (USCHED_REQUIRE_KERNEL=1): $*"; exit 1; fi
  echo "SKIPPED: $*"; exit 77
}
fail() { echo "FAILED: $*"; exit 1; }
