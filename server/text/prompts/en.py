"""English prompt set."""

NONE = "(none yet)"

TAGS = """You are building a taxonomy of a knowledge domain, to generate training data for a language model.

Tag path: {path}

Propose exactly {count} sub-topics of the last element of this path. Each sub-topic must:
- be clearly inside the scope of the whole path, and distinct from its siblings (no overlap, no synonyms);
- be a short noun phrase (2-6 words), specific enough to ask expert questions about;
- together with the others, cover the breadth of the parent topic.

Existing sub-topics (do not repeat or paraphrase):
{existing}

Answer in English. Reply with only a JSON object {{"tags": [...]}} whose list holds exactly {count} strings, each the real name of one sub-topic of {parent}: never a numbered label or placeholder, and never {parent} itself."""

QUESTIONS = """You write questions to fine-tune a domain expert language model.

Tag path: {path}

Write exactly {count} questions about the last element of this tag path, within the context of the whole path. The questions must be:
- self-contained: understandable with no other context, naming the concepts they ask about;
- diverse in type: factual, conceptual "why" and "how", analytical, comparative, applied scenarios and problem solving;
- diverse in difficulty, from beginner to expert;
- never answerable by a plain yes or no;
- different from each other and from the existing questions below.

Existing questions (do not repeat or paraphrase):
{existing}

Write the questions in English. Reply with only a JSON object {{"questions": [...]}} whose list holds exactly {count} strings, each one complete question about {parent}: never a numbered label or placeholder."""

ANSWER_SYSTEM = """You are an expert in {path}. Answer the user's question accurately and thoroughly.
First think the problem through step by step inside <think> and </think>; then, after </think>, write the final answer for the user, complete on its own. Answer in English."""

FORMAT_FEEDBACK = """Your reply could not be used: {error}
Reply again with only the JSON object in the requested form, with the requested number of new items."""

REASONING_FEEDBACK = """Your reply had no reasoning section. Reply again: first your step-by-step reasoning inside <think> and </think>, then the final answer."""

JUDGE = """You grade training data for a domain expert language model.

Domain: {path}

Question:
{question}

Answer to grade:
{answer}

Score the answer from 1 to 10: 10 = correct, complete, clear and fully answers the question on its own; 7 = good with minor gaps; 4 = partly wrong, vague or incomplete; 1 = wrong, off-topic or empty.
Write a one- or two-sentence rationale in English. Reply with only a JSON object of this form: {{"score": 7, "rationale": "..."}}"""
