"""Classify an email and extract its facts: two LLM calls with typed (pydantic, Enum) outputs.

The first call classifies the email (its type, its urgency, whether it asks for an action); the second
extracts facts (the amount, the dates that matter, the sender's company). Both replies are validated
against their models; a reply that does not validate makes the sample an error sample whose feedback
is the validation error. The urgency field's description is trainable text, like the instructions.
"""
from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from raygrad import LLMCall, Parameter, Workflow


class EmailType(str, Enum):
    order_confirmation = "order_confirmation"
    support_request = "support_request"
    meeting_invitation = "meeting_invitation"
    invoice = "invoice"
    newsletter = "newsletter"


class Urgency(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


class Classification(BaseModel):
    email_type: EmailType
    urgency: Urgency
    action_required: bool = Field(description="whether the recipient has to do something")


class Facts(BaseModel):
    sender_company: str | None = Field(description="the company that sent the email, if it names one")
    amount: float | None = Field(description="the sum of money the email is about, if any")
    key_dates: list[str] = Field(description="dates that matter, as YYYY-MM-DD")


EMAIL = "Subject: {subject}\n\n{body}"


class ExtractEmail(Workflow):
    default_eval = "email_extraction.metrics:fields_right"

    def __init__(self):
        self.classify_instruction = Parameter("Classify the email.", description="tells the first call how to "
                                              "classify an email")
        self.urgency_rule = Parameter("How urgent the email is.", role="field description",
                                      description="the urgency field's description in the output schema")
        self.extract_instruction = Parameter("Extract the facts of the email.")
        self.classify = LLMCall(system=[self.classify_instruction], user=[EMAIL], output=Classification,
                                descriptions={"urgency": self.urgency_rule})
        self.extract = LLMCall(system=[self.extract_instruction], user=[EMAIL], output=Facts)

    async def forward(self, subject: str, body: str) -> dict:
        kind = await self.classify(subject=subject, body=body)
        facts = await self.extract(subject=subject, body=body)
        return {"email_type": kind.email_type, "urgency": kind.urgency, "action_required": kind.action_required,
                "amount": facts.amount, "key_dates": facts.key_dates}
