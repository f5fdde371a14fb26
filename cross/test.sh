#!/usr/bin/env bash
# Runs edgeid's tests built for an ARM target under qemu-user, then runs the emulated binary
# and the native one on every sample photo and compares what they say (cross/compare.py:
# the same faces, identities and decisions, scores within 1e-3).
#
#   cross/test.sh aarch64            # the tests below and the comparison on the six photos
#   cross/test.sh armv7 quick        # unit tests, embeddings, the comparison on one photo
#
# Emulation runs tract about 90x slower than native (enrolling one photo: 0.7 s natively,
# 65 s under qemu-aarch64), so the suite's photo-heavy tests (hundreds of detections) run
# natively only. Emulated: every unit test, the tests that compare with onnxruntime's own
# numbers (embeddings of the 20 reference crops; MTCNN boxes and landmarks on the six photos),
# the enrol-and-identify test, and the native-vs-emulated comparison of `edgeid identify`.
# `quick` (what CI runs) keeps the unit tests, the embedding comparison and one photo.
set -euo pipefail
cd "$(dirname "$0")/.."
. cross/env.sh "${1:-}"

# Both test builds in one cargo run (they compile side by side), then each runs.
cargo test --release --target "$triple" --no-run --lib --test it
cargo test --release --target "$triple" --lib
if [ "${2:-}" = quick ]; then
  cargo test --release --target "$triple" --test it -- --exact recognition::embeddings_match_onnxruntime
  photos=(tests/data/sample1.jpg) people=(alice:sample2)
else
  cargo test --release --target "$triple" --test it -- --exact \
    recognition::embeddings_match_onnxruntime recognition::enrol_sample2_identify_sample1_names_one_face \
    detect::plain_cascade_finds_the_reference_faces
  photos=(tests/data/sample{1,2,3,4,5,6}.jpg) people=(alice:sample2 beth:sample3)
fi

# The same photos through the native and the emulated binary (the emulated one as the tests
# above built it: no second build).
cargo test --release --target "$triple" --no-run --test it
compare_with_native "target/$triple/release/edgeid"
