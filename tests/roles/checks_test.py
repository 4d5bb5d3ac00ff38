"""The roles wing's verify checks all pass and report their measured errors."""

from jaxequiv.roles import checks


def test_run_checks_all_pass():
  results = checks.run_checks()
  for _, line in results:
    print(line)
  assert len(results) >= 5
  assert all(ok and line.startswith("PASS  ") for ok, line in results)
  assert all(":" in line.split("  ", 1)[1] for _, line in results)
