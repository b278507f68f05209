import soundfile as sf

from snakeaudio.cli import main


def test_demo_writes_wavs(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--alpha", "0.5", "20"]) == 0
    out = capsys.readouterr().out
    assert "440Hz" in out
    for alpha in ("0.5", "20"):
        audio, sr = sf.read(tmp_path / f"snake_alpha_{alpha}.wav")
        assert sr == 16000 and len(audio) == 16000 and 0 < abs(audio).max() <= 0.5 + 1e-6
