import pickle

from raygrad.data import Example, PackedRows


def examples() -> list[Example]:
    split = [Example(id=str(i), input=f"question {i}", target=target)
             for i, target in enumerate(["4", 4, (1, 2), {"answer": [1, None]}, None] * 5)]
    return split + [Example(id="25", inputs={"a": 1, "b": "two"}, target="x", keywords=True),
                    Example(id="26", inputs={}, target=None, skipped="row 26: no 'input' field")]


def test_a_packed_split_gives_back_each_example_as_it_was_by_position_and_by_range():
    """Rows are unpacked one at a time where they run; every field, and a target's Python type, survive."""
    split = examples()
    packed = pickle.loads(pickle.dumps(PackedRows.pack(split, chunk_rows=4)))  # as a worker gets it, across chunks
    assert len(packed) == len(split)
    assert [packed[p] for p in range(len(split))] == list(packed) == split
    assert packed.rows(3, 11) == list(packed[3:11]) == split[3:11] and packed.rows(25, 99) == split[25:]
    assert packed[-1] == split[-1] and packed[::5] == split[::5]
    assert packed.take([26, 0, 7]) == [split[i] for i in (26, 0, 7)]
    assert type(packed[2].target) is tuple and packed[25].input == {"a": 1, "b": "two"}
    assert len(PackedRows.pack([])) == 0 and list(PackedRows.pack([])) == []


def test_a_compacted_slice_sends_only_its_own_rows():
    split = [Example(id=str(i), input="x" * 1000, target=i) for i in range(200)]
    packed = PackedRows.pack(split, chunk_rows=64)
    view = packed[10:20]
    assert len(pickle.dumps(view.compacted())) < len(pickle.dumps(packed)) / 10
    assert list(view.compacted()) == split[10:20]


def test_rows_are_found_by_their_file_row_numbers_when_some_rows_were_left_out():
    kept = [e for e in examples() if e.id not in {"3", "4", "9"}]  # bad rows skipped while reading
    packed = PackedRows.pack(kept, chunk_rows=4)
    assert [e.id for e in packed.between_ids(2, 10)] == ["2", "5", "6", "7", "8"]
    assert [e.id for e in packed.between_ids(20, 99)] == [str(i) for i in range(20, 27)]
    assert len(packed.between_ids(3, 5)) == 0
