"""Suite statistics: Wilson intervals, McNemar's paired test, and `eval compare` on two runs."""

from __future__ import annotations

import json
import math

import pytest

from kinetoscope.evaluation.stats import compare_paired, mcnemar_exact, wilson_interval


def test_wilson_interval_holds_the_rate_and_narrows_with_more_items():
    low, high = wilson_interval(25, 79)
    assert low < 25 / 79 < high and 0.2 < low < 0.23 and 0.42 < high < 0.44  # published value: 0.221-0.424
    wide, narrow = wilson_interval(10, 20), wilson_interval(100, 200)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert 0.0 < wilson_interval(0, 20)[1] < 0.2  # none passed: still not proof of 0%
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def test_mcnemar_counts_only_disagreements():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2**10)
    assert mcnemar_exact(7, 2) == pytest.approx(2 * sum(math.comb(9, k) for k in range(3)) / 2**9)
    assert mcnemar_exact(2, 7) == mcnemar_exact(7, 2)
    a = [True] * 30 + [False] * 40 + [True] * 9 + [False]
    b = [True] * 30 + [False] * 40 + [False] * 9 + [True]
    c = compare_paired(a, b)
    assert (c.both, c.only_a, c.only_b, c.neither, c.items) == (30, 9, 1, 40, 80)
    assert c.p_value < 0.05  # 9 against 1: unlikely from noise; 70 agreeing items change nothing
    with pytest.raises(ValueError, match="same items"):
        compare_paired([True], [True, False])


def _t2v_run(path, passes):
    rows = [{"prompt": f"p{i}", "kind": "canonical", "objects": 1 + i % 2, "all_correct": ok} for i, ok in enumerate(passes)]
    path.write_text(json.dumps({"summary": {}, "rows": rows}))
    return path


def test_eval_compare_pairs_two_runs_per_group(run_cli, tmp_path):
    a = _t2v_run(tmp_path / "a.json", [True] * 20 + [False] * 20)
    b = _t2v_run(tmp_path / "b.json", [True] * 40)
    result = run_cli("eval", "compare", a, b)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0] + line.split()[1]: line.split() for line in result.stdout.splitlines()[1:]}
    one = lines["1object"]
    # 20 one-object prompts: A passed the first 10, B all 20, so 10 only B.
    assert one[2:4] == ["20", "10"] and one[-3:] == ["0", "10", f"{mcnemar_exact(0, 10):.3f}"]
    conditioning = tmp_path / "c.json"
    conditioning.write_text(json.dumps({"rows": [{"task": "extend", "prompt": "p", "ok": True}]}))
    mismatched = run_cli("eval", "compare", a, conditioning)
    assert mismatched.returncode == 2 and "same suite" in mismatched.stderr and "Traceback" not in mismatched.stderr
    (tmp_path / "bad.json").write_text("{not json")
    for bad, named in ((tmp_path / "bad.json", "not the JSON"), (tmp_path / "none.json", "no such file")):
        result = run_cli("eval", "compare", a, bad)
        assert result.returncode == 2 and named in result.stderr and len(result.stderr.strip().splitlines()) == 1
