import pytest

from keras_tricks import __version__, cli


def test_init_study_prints_the_table(capsys):
    assert cli.main(["init-study", "--depth", "2", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "Initialisation study" in out
    for init in ("N(0,1)", "glorot", "he", "lsuv"):
        assert init in out


@pytest.mark.parametrize(
    "argv",
    [["init-study", "--depth", "0"], ["init-study", "--epochs", "x"], ["nope"], []],
)
def test_bad_arguments_exit_with_code_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_version():
    assert __version__.count(".") == 2
