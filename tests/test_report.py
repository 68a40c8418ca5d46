import csv

from keras_tricks.report import Report


def test_report_formats_and_converts():
    report = Report(
        [
            {"layer": "a", "std": 0.123456, "dead": None},
            {"layer": "bb", "std": 2.0, "dead": 0.5},
        ],
        title="T",
    )
    lines = str(report).splitlines()
    assert lines[0] == "T"
    assert lines[1].split() == ["layer", "std", "dead"]
    assert lines[3].split() == ["a", "0.1235", "-"]
    assert report.to_dict()["bb"] == {"layer": "bb", "std": 2.0, "dead": 0.5}
    assert report.to_records()[0]["layer"] == "a"
    assert report.to_markdown().splitlines()[2] == "| a | 0.1235 | - |"


def test_empty_report():
    assert Report().columns == []
    assert Report().to_dict() == {}


def test_to_csv_round_trips_through_the_csv_module(tmp_path):
    report = Report([{"name": "a", "score": 0.5}, {"name": "b", "score": None}])
    report.to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"name": "a", "score": "0.5"}, {"name": "b", "score": ""}]
