"""BM25 over the shipped multi-hop corpus: the two-hop structure of the questions is real."""
from __future__ import annotations

from raygrad.tasks.multihop import multihop_corpus, multihop_questions
from raygrad.tasks.retrieval import BM25, Passage, tokenize


def test_bm25_ranks_by_rare_terms_and_length():
    index = BM25([Passage(id="a", title="A", text="cat sat near mat"),
                  Passage(id="b", title="B", text="cat chased cat home"),
                  Passage(id="c", title="C", text="dog slept"),
                  Passage(id="d", title="D", text="dog barked loudly then slept under heavy green trees")])
    assert [p.id for p in index.top("cat", 4)] == ["b", "a"]  # two mentions beat one; no match, no result
    assert [p.id for p in index.top("dog slept", 2)] == ["c", "d"]  # same terms: the shorter passage first
    assert [p.id for p in index.top("cat dog", 1)] == ["b"]  # 'cat' is in 2 docs of 4 like 'dog': tf decides
    assert index.top("unicorn") == [] and tokenize("The Cat's") == ["cat", "s"]


def test_each_question_needs_both_hops():
    index = BM25(multihop_corpus())
    by_id = {p.id: p for p in index.passages}
    questions = multihop_questions()
    assert len(questions) == 40 and len(index.passages) == 48
    first_hop = sum(q["supporting"][0] in [p.id for p in index.top(q["input"], 2)] for q in questions)
    second_from_question = sum(q["supporting"][1] in [p.id for p in index.top(q["input"], 2)] for q in questions)
    second_from_bridge = sum(q["supporting"][1] in [p.id for p in index.top(by_id[q["supporting"][0]].text, 2)]
                             for q in questions)
    assert first_hop == 40 and second_from_bridge == 40
    assert second_from_question < 30  # the question alone often misses the passage with the answer
    for q in questions:  # the answer is in the second passage, not the first
        assert q["target"].lower() in by_id[q["supporting"][1]].text.lower()
