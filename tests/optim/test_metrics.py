from raygrad.optim.metrics import contains, exact_match, f1, last_number, number_match


def test_eval_functions():
    assert number_match("I count 3 apples... Answer: 7", "7") == 1.0
    assert number_match("Answer: seven", "7") == 1.0
    assert number_match("Answer: 7.", "8") == 0.0 and number_match("no idea", "8") == 0.0
    assert last_number("1,200 items") == 1200
    assert exact_match("  The Paris. ", "paris") == 1.0 and exact_match("Paris, France", "Paris") == 0.0
    assert contains("It is Paris, France", "paris") == 1.0
    assert f1("the cat sat", "cat sat down") == 0.8 and f1("", "x") == 0.0


async def test_a_users_metric_sync_or_async_with_or_without_feedback():
    from raygrad.data import Example
    from raygrad.optim.metrics import as_metric

    example = Example(id="0", inputs={"question": "q"}, target={"label": "A"}, keywords=True)

    def plain(prediction, example):
        return float(prediction == example.target["label"])

    async def with_feedback(prediction, example):
        return 0.25, f"expected {example.target['label']}"

    assert await as_metric(plain)("A", example) == (1.0, None)
    assert await as_metric(with_feedback)("B", example) == (0.25, "expected A")
    assert await as_metric("exact")(" a ", Example(id="1", input="q", target="A")) == (1.0, None)


async def test_a_metric_that_raises_or_answers_nonsense_fails_its_sample_and_never_scores_it_0():
    from raygrad.core.workflow import LLMCall, Parameter, Workflow
    from raygrad.data import Example
    from raygrad.optim.evaluate import evaluate
    from raygrad.testing import ScriptedLLM

    class Echo(Workflow):
        def __init__(self):
            self.instruction = Parameter("Echo.")
            self.call = LLMCall(system=[self.instruction])

        async def forward(self, input):
            return await self.call(text=input)

    def picky(prediction, example):
        if prediction == "boom":
            raise ValueError("cannot score 'boom'\nsecond line")
        return 2.0 if prediction == "two" else 1.0

    examples = [Example(id=str(i), input=text, target="x") for i, text in enumerate(["ok", "boom", "two"])]
    report = await evaluate(Echo(), examples, ScriptedLLM(lambda m, b: m[1]["content"]), picky)
    ok, boom, two = report.samples
    assert ok.score == 1.0 and report.completed == 1 and report.failed == 2 and report.score == 1.0
    assert boom.score is None and boom.error == "metric picky failed: ValueError: cannot score 'boom'\nsecond line"
    assert two.score is None and "expected a score in [0, 1]" in two.error
