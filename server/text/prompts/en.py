"""English prompt set: the default template of each kind, the output contract added after any template, and
the blocks that guidance and styles fill in."""

NONE = "(none yet)"

TAGS = """You are building a taxonomy of a knowledge domain, to generate training data for a language model.

{guidance}

Tag path: {path}

Propose exactly {count} sub-topics of the last element of this path. Each sub-topic must:
- be clearly inside the scope of the whole path, and distinct from its siblings (no overlap, no synonyms);
- be a short noun phrase (2-6 words), specific enough to ask expert questions about;
- together with the others, cover the breadth of the parent topic.

Existing sub-topics (do not repeat or paraphrase):
{existing}

Answer in English."""

QUESTIONS = """You write questions to fine-tune a domain expert language model.

{guidance}

Tag path: {path}

Write exactly {count} questions about the last element of this tag path, within the context of the whole path. The questions must be:
- self-contained: understandable with no other context, naming the concepts they ask about;
{style}
- never answerable by a plain yes or no;
- different from each other and from the existing questions below.

Existing questions (do not repeat or paraphrase):
{existing}

Write the questions in English."""

ANSWER = """You are an expert in {path}. Answer the user's question accurately and thoroughly.

{guidance}

{answer_style}"""

JUDGE = """You grade training data for a domain expert language model.

{guidance}

{answer_style}

Domain: {path}

Question:
{question}

Answer to grade:
{answer}

Score the answer from 1 to 10: 10 = correct, complete, clear and fully answers the question on its own; 7 = good with minor gaps; 4 = partly wrong, vague or incomplete; 1 = wrong, off-topic or empty.
Write a one- or two-sentence rationale in English."""

EVAL_JUDGE = """You grade a student model's answer against a reference answer written by a strong teacher model.

{guidance}

Domain: {path}

Question:
{question}

Reference answer (treat it as correct):
{reference}

Student's answer to grade:
{answer}

Score the student's answer from 1 to 10 by how well it matches the reference in correctness and completeness: 10 = as correct and complete as the reference; 7 = correct with minor gaps; 4 = partly wrong or missing key points; 1 = wrong, off-topic or empty. Wording and length may differ from the reference.
Write a one- or two-sentence rationale in English."""

TEMPLATES = {"tags": TAGS, "questions": QUESTIONS, "answer": ANSWER, "judge": JUDGE, "eval_judge": EVAL_JUDGE}

# Added after every template, default or custom, so the reply keeps the form the parser and the JSON schema expect.
CONTRACTS = {
    "tags": """Reply with only a JSON object {{"tags": [...]}} whose list holds exactly {count} strings, each the real name of one sub-topic of {parent}: never a numbered label or placeholder, and never {parent} itself.""",
    "questions": """Reply with only a JSON object {{"questions": [...]}} whose list holds exactly {count} strings, each one complete question about {parent}: never a numbered label or placeholder.""",
    "answer": """First think the problem through step by step inside <think> and </think>; then, after </think>, write the final answer for the user, complete on its own. Answer in English.""",
    "judge": """Reply with only a JSON object of this form: {{"score": 7, "rationale": "..."}}""",
    "eval_judge": """Reply with only a JSON object of this form: {{"score": 7, "rationale": "..."}}""",
}

# How the default templates meet their contract (a custom template is followed by a blank line): as the prompts
# always read, so a project that sets nothing sends exactly what it did before templates existed.
CONTRACT_JOINS = {"tags": " ", "questions": " ", "answer": "\n", "judge": " ", "eval_judge": "\n"}

GUIDANCE = "Guidance from the dataset's owner (follow it):\n{text}"
ANSWER_STYLE = "Answer style (for the final answer):\n{text}"
MAX_WORDS = "- at most {count} words"
FORMATS = {"prose": "plain prose", "steps": "numbered steps", "bullets": "bullet points", "code": "code blocks",
           "tables": "tables", "worked_example": "at least one worked example"}
USE_FORMATS = "- use {formats}"
STYLE_DEFAULT_TYPE = """- diverse in type: factual, conceptual "why" and "how", analytical, comparative, applied scenarios and problem solving;"""
STYLE_DEFAULT_DIFFICULTY = "- diverse in difficulty, from beginner to expert;"
STYLE_PLAN = "- written to this plan, in order: question n follows line n ({dimensions}):"
STYLE_DIMENSIONS = {"type": "type", "difficulty": "difficulty", "audience": "audience"}
STYLE_LINE = "  {number}. {parts}"
STYLE_PART = "{dimension}: {value}"
STYLE_JOIN = "; "
LIST_JOIN = ", "

FORMAT_FEEDBACK = """Your reply could not be used: {error}
Reply again with only the JSON object in the requested form, with the requested number of new items."""

REASONING_FEEDBACK = """Your reply had no reasoning section. Reply again: first your step-by-step reasoning inside <think> and </think>, then the final answer."""

FOLLOWUP = """You play the user in a conversation with an expert in {path}, to generate training data for a chat model.
{persona}
{guidance}

The conversation so far:
{transcript}

Write the user's next message: one natural follow-up that depends on what was said, for example asking to clarify a point, going deeper, raising a counter-example or applying the answer to a concrete case. Do not repeat an earlier message and do not answer it yourself.
Reply with the user's next message only, in English, with no label and no quotes."""
FOLLOWUP_PERSONA = "The user is: {audience}."
FOLLOWUP_USER = "User"
FOLLOWUP_ASSISTANT = "Expert"
FOLLOWUP_FEEDBACK = """That reply cannot be used: {error}. Write the user's next message again: a new follow-up, only the message."""
FOLLOWUP_EMPTY = "it is empty"
FOLLOWUP_REPEATED = "it repeats an earlier user message"
