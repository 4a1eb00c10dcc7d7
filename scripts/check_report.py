"""The verdict lines of the deployment checks: `ok     NAME`, or `ERROR  NAME: PROBLEM` per problem."""

from __future__ import annotations


def report(name: str, problems: list[str]) -> int:
    """Print the verdict on `name`; the number of problems."""
    for problem in problems:
        print(f"ERROR  {name}: {problem}")
    if not problems:
        print(f"ok     {name}")
    return len(problems)
