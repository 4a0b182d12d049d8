"""The self-checking exercises (``attnlib.exercises``).

- every block chapter has at least two coding exercises, and every exercise is on its chapter's page, with
  its reference solution in a dropdown (the same code as the library's copy) and a cell that checks it;
- each reference solution passes its check;
- every catalogued mistake, written as a wrong function, earns its own message (not a generic one);
- the generic diagnoses (exception, None, wrong type, shape, dtype, in-place change, memory, call count);
- bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attnlib import exercises
from attnlib.exercises import dynamic_conv, encoding, non_local as nonlocal_ex, se

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = exercises.list_exercises()
MISTAKES = [(e, m) for e in EXERCISES for m in e.mistakes]


def _id(e):
    return e.key


# ------------------------------------------------------------------------------------------ coverage


def test_every_block_chapter_has_two_coding_exercises():
    from attnlib.registry import list_blocks, block_info

    chapters = {block_info(name).chapter for name in list_blocks()} - {None}
    assert chapters <= set(exercises.CHAPTERS), f"chapters without exercises: {chapters - set(exercises.CHAPTERS)}"
    for chapter in exercises.CHAPTERS:
        assert len(exercises.list_exercises(chapter)) >= 2, chapter
    keys = [e.key for e in EXERCISES]
    assert len(keys) == len(set(keys))
    assert all(e.key.startswith(f"{e.chapter}.") for e in EXERCISES)


@pytest.mark.parametrize("exercise", EXERCISES, ids=_id)
def test_exercise_has_hints_and_several_mistakes(exercise):
    assert exercise.hints and len(exercise.mistakes) >= 3
    keys = [m.key for m in exercise.mistakes]
    messages = [m.message for m in exercise.mistakes]
    assert len(set(keys)) == len(keys) and len(set(messages)) == len(messages)


@pytest.mark.parametrize("exercise", EXERCISES, ids=_id)
def test_chapter_shows_the_exercise_its_solution_and_checks_it(exercise):
    page = (ROOT / "book" / f"{exercise.chapter}.md").read_text()
    section = page[page.index("## Exercises"):page.index("## Tests")]
    assert f'exercises.get("{exercise.key}")' in section
    source = textwrap.dedent(inspect.getsource(exercise.solution)).strip()
    dropdowns = re.findall(r":::\{admonition\}[^\n]*\n:class: dropdown\n```python\n(.*?)\n```\n:::", section, re.S)
    assert source in [d.strip() for d in dropdowns], f"{exercise.key}: the dropdown's code differs from the library's"
    assert f'exercises.check("{exercise.key}", exercises.get("{exercise.key}").solution)' in section


def test_course_guide_is_in_the_toc_and_lists_every_exercise_and_mistake_count():
    assert "book/course" in (ROOT / "_toc.yml").read_text()
    page = (ROOT / "book" / "course.md").read_text()
    for e in EXERCISES:
        row = [line for line in page.splitlines() if line.startswith("| ") and f"| `{e.key}` |" in line]
        assert row, f"book/course.md has no row for {e.key}"
        assert f"`{e.signature}`" in row[0], e.key
        # one description per catalogued mistake (separated by ';'), plus the generic memory/calls checks
        listed = row[0].rsplit("|", 2)[1].split(";")
        assert len(listed) >= len(e.mistakes), (e.key, len(listed), len(e.mistakes))


# ------------------------------------------------------------------------------------------ solutions and mistakes


@pytest.mark.parametrize("exercise", EXERCISES, ids=_id)
def test_reference_solution_passes(exercise):
    result = exercise.check(exercise.solution)
    assert result, result
    assert result.mistake is None and result.message.startswith("your function matches")


@pytest.mark.parametrize("exercise, mistake", MISTAKES, ids=[f"{e.key}:{m.key}" for e, m in MISTAKES])
def test_each_catalogued_mistake_gets_its_own_message(exercise, mistake):
    result = exercise.check(mistake.wrong)
    assert not result
    assert result.mistake == mistake.key, result
    assert result.message == mistake.message
    assert "tensor(" not in result.message  # never shows values


def test_mistakes_are_recognised_on_other_seeds_too():
    for exercise in (se.gate, encoding.assign):
        for m in exercise.mistakes:
            assert exercise.check(m.wrong, seed=7).mistake == m.key


# ------------------------------------------------------------------------------------------ generic diagnoses


def test_exception_none_type_and_shape_messages():
    def raises(x, W1, b1, W2, b2):
        raise NotImplementedError("not written yet")

    r = se.gate.check(raises)
    assert r.mistake == "exception" and "NotImplementedError: not written yet" in r.message and "x of shape" in r.message
    assert se.gate.check(lambda *a: None).mistake == "type"
    r = se.gate.check(lambda *a: "a string")
    assert r.mistake == "type" and "one tensor" in r.message
    r = se.gate.check(lambda x, *w: x.mean(dim=(1, 2, 3)))
    assert r.mistake == "shape" and "should return" in r.message


def test_wrong_values_of_the_right_shape_get_a_generic_message_without_the_answer():
    r = se.gate.check(lambda x, W1, b1, W2, b2: torch.full((x.shape[0], x.shape[1], 1, 1), 0.5, dtype=x.dtype))
    assert r.mistake == "values" and "hint" in r.message and "tensor(" not in r.message


def test_float32_output_is_reported_as_a_dtype_problem():
    r = se.gate.check(lambda *a: se.se_gate(*(t.float() for t in a)) + 1e-3)
    assert r.mistake == "dtype"


def test_in_place_change_of_an_input_is_reported():
    def in_place(x, W1, b1, W2, b2):
        x.mul_(2)
        return se.se_gate(x / 2, W1, b1, W2, b2)

    assert se.gate.check(in_place).mistake == "in_place"


def test_the_big_distance_tensor_is_caught():
    def expanded(x, d, s):
        X = x.flatten(2).transpose(1, 2)                          # (B, N, C)
        dist = ((X[:, :, None, :] - d) ** 2).sum(-1)              # (B, N, K, C) -> (B, N, K)
        return torch.softmax(-s * dist, dim=2).transpose(1, 2)

    r = encoding.assign.check(expanded)
    assert r.mistake == "memory" and "too large" in r.message


def test_an_explicit_attention_matrix_is_caught_in_the_sdpa_exercise():
    def explicit(x, W_theta, b_theta, W_phi, W_g, b_g):
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        y = nonlocal_ex.nl_attend(t @ W_theta.T + b_theta, t @ W_phi.T, t @ W_g.T + b_g)
        return y.transpose(1, 2).reshape(B, -1, H, W)

    assert nonlocal_ex.sdpa.check(explicit).mistake == "memory"


def test_a_loop_over_samples_is_caught():
    def loop(x, pi, weight, bias):
        k = weight.shape[-1]
        return torch.cat([F.conv2d(x[i:i + 1], torch.einsum("k,koihw->oihw", pi[i], weight), pi[i] @ bias,
                                   padding=k // 2) for i in range(x.shape[0])])

    r = dynamic_conv.conv.check(loop)
    assert r.mistake == "calls" and "conv2d" in r.message


# ------------------------------------------------------------------------------------------ API


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="callable"):
        se.gate.check("se_gate")
    with pytest.raises(ValueError, match="trials"):
        se.gate.check(se.se_gate, trials=0)
    with pytest.raises(ValueError, match="no exercise"):
        exercises.get("se.nothing")
    with pytest.raises(ValueError, match="chapter"):
        exercises.list_exercises("transformers")
    with pytest.raises(ValueError, match="level"):
        se.gate.hint(0)


def test_hint_and_description(capsys):
    text = exercises.hint("se.gate")
    assert text in capsys.readouterr().out and "Hint 1/" in text
    assert "se_gate(x, W1, b1, W2, b2)" in repr(se.gate)
    assert exercises.check("se.gate", se.se_gate)
