"""Evolving-topology networks (the lab's "dynamic networks"), rebuilt without its bugs, evolved
by GA only.

A member is a graph: one input node per observation feature, one output node per action, and
hidden nodes that mutation grows and prunes. Every non-input node has exactly three inputs
(input, output or hidden nodes, itself included: cycles and self-loops are allowed) with
weights drawn N(0, 1) when the edge is made and never trained. Each time step writes the
observation into the input nodes (z-scored by each input node's own running statistics), then
runs `passes` synchronous passes: every non-input node takes the weighted sum of its three
inputs' values from the previous pass, applies tanh (or nothing: `nonlinearity="identity"`, as
the lab's code did), and standardises the result with its own running (Welford) mean and
variance, which the samples update as they flow. The output nodes' z-scores are the logits.
Node values are the recurrent state: carried across the steps of an episode, zero at each
episode's start.

What differs from the lab's code, on purpose:
- the Welford statistics belong to the member: selection copies them with the graph, the
  weights and the mutation rates (the lab rebuilt them from zero after every generation);
- every value of every valid step updates the statistics (no value-equality heuristic), and
  a node's spread is floored at `min_std` so that float rounding of a (near-)constant node is
  never amplified into signal;
- episodes run side by side from a zero state (the lab ran the whole data set as one sequence,
  one Python iteration per sample); at step t the statistics take the values of all episodes
  still running as one batch (Chan et al.'s batch form of Welford's update); results do not
  depend on the thread count (chunks of the population are fixed by the shapes);
- every non-input node always has three inputs (outputs start wired to the inputs), a pruned
  node's consumers are re-wired to one of its own inputs (the signal path is kept), and any
  hidden node from which no output can be reached is removed with it (the lab's cascade,
  extended to dead cycles); `max_hidden` and `max_passes` bound the cost;
- all randomness comes from an explicit `torch.Generator` (each member's mutation from its own
  `random.Random`, seeded from it), so a checkpointed run resumes bit for bit.

Evaluation (`export`, `DynamicEvaluation`, `forward` and `forward_step` by default) freezes the
statistics: evaluating a net must not change it. Training fitness (`fitness`,
`sequence_cross_entropy`, `DynamicFitness`) updates them.

The population subclasses `Population` with an empty parameter matrix `params [P, 0]` (the
graphs are not a vector), so hbm-ne's `GA` and `evolve` drive it unchanged; `evolve_dynamic`
wires them up for supervised imitation.

Rooms: `packed` (episodes laid out for the time loop), `graph` (one graph during mutation),
`net` (`DynamicNet`, the exported member), `population` (`DynamicPopulation`), `evolve`
(`DynamicFitness`, `DynamicEvaluation`, `evolve_dynamic`).
"""

from __future__ import annotations

from hbm_ne.dynamic.evolve import DynamicEvaluation, DynamicFitness, evolve_dynamic
from hbm_ne.dynamic.net import NONLINEARITIES as NONLINEARITIES
from hbm_ne.dynamic.net import DynamicNet
from hbm_ne.dynamic.packed import PackedEpisodes, pack_episodes
from hbm_ne.dynamic.population import DynamicPopulation

__all__ = [
    "DynamicEvaluation",
    "DynamicFitness",
    "DynamicNet",
    "DynamicPopulation",
    "PackedEpisodes",
    "evolve_dynamic",
    "pack_episodes",
]

#: Bytes of one chunk's node values `[Nmax, c, E]` (CPU): about a hundred nets of twenty nodes
#: over thirty episodes, so that a step's working set stays in cache and P = 256 splits into
#: chunks that worker threads take side by side. `DynamicPopulation` reads these at call time.
CPU_CHUNK_BYTES = 1 << 19
GPU_CHUNK_BYTES = 1 << 28
