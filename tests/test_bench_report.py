"""bench/report.py: a benchmark rewrites only its own section of docs/benchmarks.md."""

from bench.report import command_line, markers, write_section


def test_section_is_created_replaced_and_neighbours_survive(tmp_path):
    path = tmp_path / "benchmarks.md"
    write_section(path, "a", "first A")
    assert path.read_text().startswith("# Benchmarks") and "first A" in path.read_text()
    write_section(path, "b", "only B")
    write_section(path, "a", "second A")
    text = path.read_text()
    assert "second A" in text and "first A" not in text and "only B" in text
    start, end = markers("a")
    assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index("second A") < text.index(end)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_command_line_names_the_script_and_quotes_its_arguments():
    assert command_line("engine.py", []) == "python bench/engine.py"
    assert command_line("big_dataset.py", ["--out", "a b.md", "--steps", "5"]) == \
        "python bench/big_dataset.py --out 'a b.md' --steps 5"
