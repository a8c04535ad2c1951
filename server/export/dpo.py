"""Preference pairs (DPO, ORPO, KTO-pairs) as export records: one record per kept pair, `chosen` the response the
judge preferred by at least the margin.

- dpo_style="llamafactory": LLaMA-Factory's ranking layout in alpaca form, {"instruction", "input": "", "chosen",
  "rejected", "system"?}, described in dataset_info.json with "ranking": true;
- dpo_style="trl": TRL's standard preference format {"prompt", "chosen", "rejected"} (strings); with a system prompt,
  TRL's conversational form: "prompt" is the system and user messages, "chosen"/"rejected" one assistant message.

Reasoning "think" puts each response's own reasoning in <think>...</think> before it (as the SFT formats do);
"none" keeps the responses alone. A separate reasoning field has no column in either trainer's preference format.
"""

from __future__ import annotations

from typing import Any

from treedistill.server.errors import InvalidInput

LLAMAFACTORY_COLUMNS = {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}
TRL_COLUMNS = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}


def check_dpo_options(reasoning: str, dpo_style: str, system: str | None, dataset_info: bool) -> None:
    """InvalidInput for a dpo export the trainers could not read as asked."""
    if reasoning == "field":
        raise InvalidInput("format='dpo' has no column for a separate reasoning field (neither LLaMA-Factory's "
                           "ranking format nor TRL's preference format reads one): use reasoning='think' (each "
                           "response's reasoning in <think>...</think> before it) or reasoning='none'.")
    if dpo_style == "trl" and system and dataset_info:
        raise InvalidInput("With a system prompt, dpo_style='trl' writes TRL's conversational form, which "
                           "LLaMA-Factory's dataset_info.json cannot describe: use dpo_style='llamafactory' for "
                           "LLaMA-Factory, or dataset_info=false.")


def pair_record(row: dict[str, Any], dpo_style: str, response: Any, system: str | None) -> dict[str, Any]:
    """One export record of a kept pair (a row of PreferenceStore.export_rows); `response(answer, reasoning)` lays a
    response out in the export's reasoning mode."""
    teacher = response(row["teacher_answer"], row["teacher_reasoning"] or "")
    rival = response(row["rival_answer"], row["rival_reasoning"] or "")
    chosen, rejected = (teacher, rival) if row["chosen"] == "teacher" else (rival, teacher)
    if dpo_style == "llamafactory":
        record = {"instruction": row["question"], "input": "", "chosen": chosen, "rejected": rejected}
        return {**record, "system": system} if system else record
    if not system:
        return {"prompt": row["question"], "chosen": chosen, "rejected": rejected}
    return {"prompt": [{"role": "system", "content": system}, {"role": "user", "content": row["question"]}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def dataset_info_entry(file_name: str, dpo_style: str, system: str | None) -> dict[str, Any]:
    """LLaMA-Factory's description of a dpo file: alpaca formatting with "ranking": true."""
    columns = dict(LLAMAFACTORY_COLUMNS if dpo_style == "llamafactory" else TRL_COLUMNS)
    if system and dpo_style == "llamafactory":
        columns["system"] = "system"
    return {"file_name": file_name, "formatting": "alpaca", "ranking": True, "columns": columns}
