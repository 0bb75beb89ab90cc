"""A training stream that changes task at step boundaries: a curriculum.

Glossary of shapes:
- R: batch rows of this host.  T: segment length.
- P: phases; phase k feeds the steps [boundary k-1, boundary k).
- G: characters between two mentions of a value (data/synthetic.py).

A model that cannot learn a long-range recall from scratch may learn it
after an easier version (e.g. passkey gap G = 24, then G = 160). Doing that
by hand (train, edit the config, continue) restarts the learning-rate
schedule; here one run with one schedule reads phase k's stream while its
step count is below boundary k, then switches.

At a switch every row drops its unfinished document and takes the next
document of the host's order from the new phase's corpus, so that step has
`start_of_sequence` True on every row: no memory carries text of the old
task into the new one, and the order of documents (epoch, cursor) runs on.

The state is the inner stream's state plus the step count and the phase,
so a run resumed from any step, before, at or after a boundary, reads the
same batches as an uninterrupted one.
"""

from typing import Any, Callable, Sequence

from data import stream as stream_lib

_STATE_VERSION = 1


class CurriculumStream:
  """Batches of `make_phase(k)` for steps in [boundaries[k-1], boundaries[k]).

  `make_phase(k)` builds phase k's stream (anything with the SegmentStream
  interface), for k in [0, len(boundaries)]; the last phase runs forever.
  Every phase is built here, so a bad phase fails before training starts.
  """

  def __init__(self, make_phase: Callable[[int], Any],
               boundaries: Sequence[int]):
    boundaries = [int(b) for b in boundaries]
    if not boundaries or boundaries[0] < 1 or any(
        b >= c for b, c in zip(boundaries, boundaries[1:])):
      raise ValueError(f"Curriculum boundaries {boundaries} must be positive "
                       "steps in increasing order, e.g. [1000] for a first "
                       "phase of 1,000 steps.")
    self._phases = [make_phase(k) for k in range(len(boundaries) + 1)]
    self._boundaries = boundaries
    self._step, self._phase = 0, 0

  @property
  def phase(self) -> int:
    """The phase of the last batch (0 before the first)."""
    return self._phase

  def __iter__(self) -> "CurriculumStream":
    return self

  def __next__(self) -> stream_lib.Batch:
    while (self._phase < len(self._boundaries) and
           self._step >= self._boundaries[self._phase]):
      self._switch()
    batch = next(self._stream)
    self._step += 1
    return batch

  @property
  def _stream(self):
    return self._phases[self._phase]

  def _switch(self) -> None:
    """Phase k+1 reads on from phase k's position with every row fresh."""
    state = stream_lib.drop_documents(self._stream.get_state())
    self._phase += 1
    self._stream.set_state(state)

  def get_state(self) -> dict[str, Any]:
    return {"version": _STATE_VERSION, "boundaries": list(self._boundaries),
            "step": self._step, "phase": self._phase,
            "stream": self._stream.get_state()}

  def set_state(self, state: dict[str, Any], **kwargs) -> None:
    """Continues from `state`; `kwargs` go to the phase's stream."""
    if state.get("version") != _STATE_VERSION or "stream" not in state:
      raise ValueError("The stream state is not a curriculum state (version "
                       f"{state.get('version')!r}); it was saved by a run "
                       "without this curriculum. Resume with that run's "
                       "config or start a new workdir.")
    if state["boundaries"] != self._boundaries:
      raise ValueError(f"Stream state was saved with curriculum boundaries "
                       f"{state['boundaries']}, now {self._boundaries}; "
                       "resume with the saved curriculum or a new workdir.")
    self._phase, self._step = state["phase"], state["step"]
    self._stream.set_state(state["stream"], **kwargs)
