"""Metric names a PromQL expression selects, for tests that check queries only use documented names."""

from __future__ import annotations

import promql_parser


def selected_metrics(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names
