"""The three-line format: per student a count line, a line of comma-separated 1-based skill
ids and a line of comma-separated 0/1 responses (the DKVMN/DKT files in ``shared/data``)."""
from __future__ import annotations

import numpy as np

from cmkt.data._common import (
    _COUNT_LINE,
    _check_file,
    _check_ids,
    _empty_error,
    _parse_ints,
    _parse_responses,
    _read_text,
    _show,
    _tokens,
)
from cmkt.data.dataset import KTDataset
from cmkt.errors import DataError

__all__ = ["read_three_line"]


def read_three_line(path, skill_vocab=None) -> KTDataset:
    """Read the three-line format (count / 1-based skill ids / 0-1 responses per student)."""
    p = _check_file(path)
    text = _read_text(p)
    lines = text.split("\n")
    n = len(lines)

    def truncated(count_line: int, missing: str):
        return DataError(p, f"the file ends inside the student block that starts here: the {missing} "
                            "line is missing (truncated file?)", count_line)

    def rest_is_blank(k: int) -> bool:
        return all(not lines[j].strip() for j in range(k, n))

    skills: list[np.ndarray] = []
    responses: list[np.ndarray] = []
    student_ids: list[str] = []
    max_id = 0
    block = 0
    i = 0
    while i < n:
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        count_ln = i + 1
        if not _COUNT_LINE.fullmatch(line):
            raise DataError(p, "expected the number of interactions (an integer) at the start of a "
                               f"student's block, found {_show(line)}", count_ln)
        count = int(line.rstrip(",").strip())
        if count < 0:
            raise DataError(p, f"the number of interactions cannot be negative ({count})", count_ln)
        block += 1
        if count == 0:
            # A student with no interactions: skip the (empty) id and response lines if present.
            j = i + 1
            for _ in range(2):
                if j < n and not lines[j].strip().strip(",").strip():
                    j += 1
                elif j < n and "," in lines[j]:
                    raise DataError(p, f"the count on line {count_ln} is 0 but this line holds values", j + 1)
                else:
                    break
            i = j
            continue
        # skill-id line and response line follow directly
        if i + 1 >= n or (not lines[i + 1].strip() and rest_is_blank(i + 1)):
            raise truncated(count_ln, "skill-id")
        if i + 2 >= n or (not lines[i + 2].strip() and rest_is_blank(i + 2)):
            raise truncated(count_ln, "response")
        id_ln, resp_ln = i + 2, i + 3
        id_tokens = _tokens(lines[i + 1])
        resp_tokens = _tokens(lines[i + 2])
        if not id_tokens:
            raise DataError(p, f"expected {count} skill ids (the count on line {count_ln}), "
                               "found an empty line", id_ln)
        if not resp_tokens:
            raise DataError(p, f"expected {count} responses (the count on line {count_ln}), "
                               "found an empty line", resp_ln)
        if len(id_tokens) != len(resp_tokens):
            raise DataError(p, f"{len(resp_tokens)} responses but line {id_ln} has {len(id_tokens)} "
                               "skill ids (they must have the same length)", resp_ln)
        if len(id_tokens) != count:
            raise DataError(p, f"the count says {count} interactions but lines {id_ln}-{resp_ln} "
                               f"hold {len(id_tokens)}", count_ln)
        ids = _parse_ints(id_tokens, p, id_ln, "skill id")
        _check_ids(ids, p, id_ln, 1, skill_vocab)
        r = _parse_responses(resp_tokens, p, resp_ln)
        max_id = max(max_id, int(ids.max()))
        skills.append(ids - 1)
        responses.append(r)
        student_ids.append(str(block))
        i += 3

    if not skills:
        raise _empty_error(p)
    if skill_vocab is not None:
        labels = [str(v) for v in skill_vocab]
    else:
        labels = [str(k) for k in range(1, max_id + 1)]
    return KTDataset(skills, responses, student_ids, len(labels), labels, list(labels), source=str(p))
