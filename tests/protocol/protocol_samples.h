// Sample messages of every type, the session limits they are valid under,
// and a mutator of encoded frames: shared by the codec tests, the
// randomized robustness test and the fuzz target's corpus driver.
#ifndef ZFILE_TESTS_PROTOCOL_PROTOCOL_SAMPLES_H_
#define ZFILE_TESTS_PROTOCOL_PROTOCOL_SAMPLES_H_

#include <cstdint>
#include <random>
#include <vector>

#include "protocol/frame.h"
#include "protocol/messages.h"

namespace zfile::protocol::testing {

// The limits every sample is valid under (and protocol_fuzz.cc's: keep
// them equal): a 1 MiB shared-memory region, a 256 MiB arena of 64 KiB
// pages.
SessionLimits SampleLimits();

// At least one request of every type, with edge values (empty and
// maximum-length strings, extreme integers, ranges ending exactly at the
// end of the region).
std::vector<Request> SampleRequests();

// At least one successful and one failed reply of every type.
std::vector<Reply> SampleReplies();

// Every sample request and reply, encoded as frames (request ids vary).
std::vector<std::vector<uint8_t>> SampleFrames();

// A copy of a random one of `samples` as the start of a mutation. Samples
// over 4 KiB are usually cut to a random length below that: mutating and
// decoding 60 KiB frames 100000 times costs minutes under TSan and finds
// nothing that their first few KiB, or their uncut form now and then,
// does not.
std::vector<uint8_t> PickSample(const std::vector<std::vector<uint8_t>>& samples,
                                std::mt19937_64& rng);

// Changes `frame` in one to a few random ways (bit flips, interesting
// values over integers, insertions, deletions, truncation, garbage), and
// half of the time makes the header's payload size agree with what
// follows, so that the payload decoders are reached.
void Mutate(std::vector<uint8_t>& frame, std::mt19937_64& rng);

// Random bytes that are often a plausible frame header (right magic and
// version, a known type) followed by random payload bytes.
std::vector<uint8_t> RandomFrame(std::mt19937_64& rng);

// Rewrites the header's payload size to what follows the header.
void FixPayloadSize(std::vector<uint8_t>& frame);

}  // namespace zfile::protocol::testing

#endif  // ZFILE_TESTS_PROTOCOL_PROTOCOL_SAMPLES_H_
