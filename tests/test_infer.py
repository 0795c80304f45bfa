"""README's main command stays runnable: the offline inference demo."""

from llava.infer import main


def test_demo_runs_and_says_weights_are_random(capsys):
    main(["--width", "320", "--height", "240", "--max-new-tokens", "2"])
    out = capsys.readouterr().out
    assert "RANDOM weights" in out
    assert "1317 image tokens" in out  # 320x240 -> 1x1 grid, unpadded to 21 rows: 729 + 21 x (27 + 1)
    assert "generated 2 tokens" in out
