"""Report of a real-model run (see run.sh): exact counts, placeholder/echo items, calls answered vs planned.

    python benchmarks/real_model/report.py DB SERVER_LOG [--wall SECONDS]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from collections import Counter

from treedistill.server.text.parsing import ListContext, item_problem

_ACCESS = re.compile(r'"POST /v1/chat/completions HTTP/[\d.]+" (\d{3})')
_OPTION = re.compile(r"(?:^|\s|\()([A-D])[\).:]\s")  # "A) ...", "(B) ...", "C. ...", "D: ..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("server_log")
    parser.add_argument("--wall", type=float, default=None)
    args = parser.parse_args()
    conn = sqlite3.connect(args.db)
    project = conn.execute("SELECT id, topic, language FROM projects ORDER BY id DESC LIMIT 1").fetchone()
    if project is None:
        raise SystemExit("no project in the database: the run did not start")
    project_id, topic, language = project
    job = conn.execute("SELECT status, planned_tags, planned_questions, planned_answers, planned_calls, tags_done, "
                       "questions_done, answers_done, calls_done, calls_failed, error FROM jobs "
                       "WHERE project_id = ? ORDER BY id DESC LIMIT 1", (project_id,)).fetchone()
    tags = conn.execute("SELECT name, path FROM tags WHERE project_id = ?", (project_id,)).fetchall()
    questions = conn.execute("SELECT q.text, t.path FROM questions q JOIN tags t ON t.id = q.tag_id "
                             "WHERE q.project_id = ?", (project_id,)).fetchall()
    styled = conn.execute("SELECT question_type, difficulty, audience, text FROM questions WHERE project_id = ? AND"
                          " (question_type IS NOT NULL OR difficulty IS NOT NULL OR audience IS NOT NULL)",
                          (project_id,)).fetchall()
    answers = conn.execute("SELECT COUNT(*) FROM answers a JOIN questions q ON q.id = a.question_id "
                           "WHERE q.project_id = ?", (project_id,)).fetchone()[0]
    errors = [row[0] for row in conn.execute(
        "SELECT DISTINCT error FROM work_items WHERE project_id = ? AND error IS NOT NULL", (project_id,))]
    statuses = Counter(_ACCESS.findall(open(args.server_log, encoding="utf-8", errors="replace").read()))
    status, p_tags, p_questions, p_answers, planned_calls, *_rest = job
    bad = []
    for name, path in tags:
        context = ListContext(language, (topic, *path.split(" > ")[:-1]))
        problem = item_problem(name, "tags", context)
        if problem:
            bad.append(f"tag {name!r} {problem}")
    for text, path in questions:
        problem = item_problem(text, "questions", ListContext(language, (topic, *path.split(" > "))))
        if problem:
            bad.append(f"question {text!r} {problem}")
    answered = statuses.get("200", 0)
    print(f"job status: {status}")
    print(f"tags: {len(tags)} of {p_tags} planned: {[name for name, _ in tags]}")
    print(f"questions: {len(questions)} of {p_questions} planned")
    for text, path in questions:
        print(f"  [{path}] {text}")
    print(f"answers: {answers} of {p_answers} planned")
    if styled:  # a question-style mix: what was asked (stored per question) and what the model wrote
        print("question styles asked for (type / difficulty / audience: count):")
        for style, count in sorted(Counter(row[:3] for row in styled).items(), key=str):
            print(f"  {' / '.join(value or '-' for value in style)}: {count}")
        choice = [text for kind, _, _, text in styled if kind and "choice" in kind.lower()]
        if choice:
            with_options = sum(len(set(_OPTION.findall(text))) >= 3 for text in choice)
            print(f"multiple-choice questions that list at least 3 lettered options: {with_options} of {len(choice)}")
    print(f"placeholder/echo items: {len(bad)}" + "".join(f"\n  {line}" for line in bad))
    print(f"calls answered (HTTP 200) by the server: {answered}; refused: "
          f"{sum(n for code, n in statuses.items() if code != '200')} {dict(statuses)}; planned: {planned_calls}; "
          f"paid/planned = {answered / planned_calls:.2f}" if planned_calls else "no planned calls")
    if args.wall is not None:
        print(f"wall time of the distill command: {args.wall:.1f} s")
    for error in errors[:5]:
        print(f"error: {error[:300]}")


if __name__ == "__main__":
    main()
