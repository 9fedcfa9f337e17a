"""Progress through forced words, as transformers 4.x's ``beam_constraints`` tracks it.

A ``Phrase`` is a sequence of tokens that must appear in order; a
``Disjunction`` is fulfilled by any one of several such sequences (a trie
of them). A ``ConstraintProgress`` follows one beam through a list of them:
which are complete, which one is in progress, which are pending, and the
"bank" (how far along the beam is) that constrained beam search ranks by.

This follows 4.55.4 step for step, its quirks included, because the
search's choices depend on them: progress is rebuilt from a beam's whole
sequence, the prompt included (a forced word already in the prompt counts
as done, FINDINGS), and a stateful copy of a disjunction in progress shares
its token list with the original.
"""

from __future__ import annotations

from typing import Any, Protocol


class Constraint(Protocol):
    seqlen: int
    completed: bool

    def advance(self) -> int | list[int] | None: ...
    def does_advance(self, token_id: int) -> bool: ...
    def update(self, token_id: int) -> tuple[bool, bool, bool]: ...
    def reset(self) -> None: ...
    def remaining(self) -> int: ...
    def copy(self, stateful: bool = False) -> Constraint: ...


class Phrase:
    """Tokens that must appear in this order (4.x ``PhrasalConstraint``)."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids
        self.seqlen = len(token_ids)
        self.fulfilled_idx = -1
        self.completed = False

    def advance(self) -> int | None:
        return None if self.completed else self.token_ids[self.fulfilled_idx + 1]

    def does_advance(self, token_id: int) -> bool:
        return not self.completed and token_id == self.token_ids[self.fulfilled_idx + 1]

    def update(self, token_id: int) -> tuple[bool, bool, bool]:
        """``(stepped, completed, reset)`` after ``token_id``."""
        if self.does_advance(token_id):
            self.fulfilled_idx += 1
            self.completed = self.fulfilled_idx == self.seqlen - 1
            return True, self.completed, False
        self.reset()
        return False, False, True

    def reset(self) -> None:
        # 4.x resets to 0, not -1; the reset object is always replaced by a fresh copy afterwards.
        self.completed = False
        self.fulfilled_idx = 0

    def remaining(self) -> int:
        return self.seqlen - (self.fulfilled_idx + 1)

    def copy(self, stateful: bool = False) -> Phrase:
        new = Phrase(self.token_ids)
        if stateful:
            new.fulfilled_idx = self.fulfilled_idx
            new.completed = self.completed
        return new


def _trie(words: list[list[int]]) -> dict[int, Any]:
    root: dict[int, Any] = {}
    for word in words:
        level = root
        for token in word:
            level = level.setdefault(token, {})
    return root


def _leaves(node: dict[int, Any]) -> int:
    return 1 if not node else sum(_leaves(child) for child in node.values())


class Disjunction:
    """Any one of several token sequences (4.x ``DisjunctiveConstraint``)."""

    def __init__(self, words: list[list[int]]) -> None:
        self.trie = _trie(words)
        if _leaves(self.trie) != len(words):
            raise ValueError(f"no word of a disjunctive constraint may begin another: {words}")
        self.token_ids = words
        self.seqlen = max(len(word) for word in words)
        self.current_seq: list[int] = []
        self.completed = False

    def _next(self) -> list[int]:
        node = self.trie
        for token in self.current_seq:
            node = node[token]
        return list(node)

    def advance(self) -> list[int] | None:
        return self._next() or None

    def does_advance(self, token_id: int) -> bool:
        return token_id in self._next()

    def update(self, token_id: int) -> tuple[bool, bool, bool]:
        stepped = reset = False
        if self.does_advance(token_id):
            self.current_seq.append(token_id)
            stepped = True
        else:
            reset = True
            self.reset()
        self.completed = not self._next()
        return stepped, self.completed, reset

    def reset(self) -> None:
        self.completed = False
        self.current_seq = []

    def remaining(self) -> int:
        return 0 if self.completed else self.seqlen - len(self.current_seq)

    def copy(self, stateful: bool = False) -> Disjunction:
        new = Disjunction(self.token_ids)
        if stateful:
            new.current_seq = self.current_seq  # shared, as in 4.x: the search's choices depend on it
            new.completed = self.completed
        return new


class ConstraintProgress:
    """One beam's progress through all constraints (4.x ``ConstraintListState``)."""

    def __init__(self, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.max_seqlen = max(c.seqlen for c in constraints)
        self.completed = False
        self.init_state()

    def init_state(self) -> None:
        self.complete: list[Constraint] = []
        self.in_progress: Constraint | None = None
        self.pending: list[Constraint] = [c.copy(stateful=False) for c in self.constraints]

    def bank(self) -> int:
        """How far along the beam is: max_seqlen per complete constraint, plus the progress of the current one."""
        extra = self.max_seqlen - self.in_progress.remaining() if self.in_progress else 0
        return len(self.complete) * self.max_seqlen + extra

    def advance(self) -> list[int] | None:
        """The tokens that make progress: the current constraint's next, else every pending one's first."""
        sources = [self.in_progress] if self.in_progress is not None else self.pending
        tokens: list[int] = []
        for constraint in sources:
            step = constraint.advance()
            if isinstance(step, int):
                tokens.append(step)
            elif isinstance(step, list):
                tokens.extend(step)
        return tokens or None

    def reset(self, token_ids: list[int] | None) -> None:
        """Progress rebuilt from a whole sequence."""
        self.init_state()
        for token in token_ids or []:
            self.add(token)
            if self.completed:
                break

    def add(self, token_id: int) -> tuple[bool, bool]:
        if self.completed:
            return True, False
        complete = stepped = False
        if self.in_progress is not None:
            stepped, complete, reset = self.in_progress.update(token_id)
            if reset:
                self.pending.append(self.in_progress.copy(stateful=False))
                self.in_progress = None
            if complete:
                assert self.in_progress is not None
                self.complete.append(self.in_progress)
                self.in_progress = None
                if not self.pending:
                    self.completed = True
            return complete, stepped
        for index, constraint in enumerate(self.pending):
            if not constraint.does_advance(token_id):
                continue
            stepped, complete, _ = constraint.update(token_id)
            if complete:
                self.complete.append(constraint)
                self.in_progress = None
            elif stepped:
                self.in_progress = constraint
            if complete or stepped:
                self.pending = self.pending[:index] + self.pending[index + 1 :]
                if not self.pending and self.in_progress is None:
                    self.completed = True
                break  # one token advances one constraint at most
        return complete, stepped

    def copy(self, stateful: bool = True) -> ConstraintProgress:
        new = ConstraintProgress(self.constraints)
        if stateful:
            new.complete = [c.copy(stateful=True) for c in self.complete]
            if self.in_progress is not None:
                new.in_progress = self.in_progress.copy(stateful=True)
            new.pending = [c.copy() for c in self.pending]
        return new
