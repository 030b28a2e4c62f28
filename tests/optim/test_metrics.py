from raygrad.optim.metrics import contains, exact_match, f1, last_number, number_match


def test_eval_functions():
    assert number_match("I count 3 apples... Answer: 7", "7") == 1.0
    assert number_match("Answer: seven", "7") == 1.0
    assert number_match("Answer: 7.", "8") == 0.0 and number_match("no idea", "8") == 0.0
    assert last_number("1,200 items") == 1200
    assert exact_match("  The Paris. ", "paris") == 1.0 and exact_match("Paris, France", "Paris") == 0.0
    assert contains("It is Paris, France", "paris") == 1.0
    assert f1("the cat sat", "cat sat down") == 0.8 and f1("", "x") == 0.0
