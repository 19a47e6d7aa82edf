"""What a node asks its peers for a search it runs with include_federation."""

from __future__ import annotations

from noosphere.federation.search import ask_of
from noosphere.memory.model import SearchQuery


def test_a_kind_no_memory_can_have_is_not_asked_of_peers() -> None:
    asked = ask_of(
        SearchQuery(query="deploys", kinds=["decision", "Not A Kind!", ""], include_federation=True)
    )
    assert asked is not None and asked["kinds"] == ["decision"]
    assert ask_of(SearchQuery(query="deploys", kinds=["", "£<"], include_federation=True)) is None
    assert ask_of(SearchQuery(query="deploys"))["query"] == "deploys"  # type: ignore[index]
