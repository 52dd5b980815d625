//! Gang rotations aligned to the wall clock, for gangs of one job on
//! several nodes (docs/slurm.md, "Gangs across nodes"). Every node that
//! turns its rows at the same wall-clock quantum boundaries and puts a
//! job's gang in the same row runs that gang in the same slot as every
//! other node, without a message between them. Pure: time is passed in
//! (nanoseconds since the Unix epoch, CLOCK_REALTIME as NTP or PTP keep it).
#pragma once

#include <cstdint>

namespace usched {

// Index of the quantum that contains wall time t: floor(t / quantum). The
// same on every node whose clock agrees with this one.
int64_t quantum_index(int64_t t_ns, int64_t quantum_ns);

// The first quantum boundary strictly after t: where a node sets its
// rotation timer (absolute, TIMER_ABSTIME) instead of "now + quantum",
// which would drift by each wakeup's latency.
int64_t next_boundary(int64_t t_ns, int64_t quantum_ns);

// The row that runs during the quantum containing t, for a matrix of
// `rows` rows: quantum_index mod rows.
int row_at(int64_t t_ns, int64_t quantum_ns, int rows);

// The row a job's gangs ask for on every node: derived from the job id
// alone, consecutive ids spread over the rows.
int job_row(uint64_t job_id, int rows);

// Share of a quantum in which a job's gangs on two nodes really run
// together when their clocks differ by `skew`: (quantum - |skew|) /
// quantum, 0 once the skew reaches a quantum. With 20 ms quanta, NTP's
// ~1 ms on a LAN keeps 95%; PTP's microseconds keep all of it.
double corun_share(int64_t quantum_ns, int64_t skew_ns);

}  // namespace usched
