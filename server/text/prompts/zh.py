"""Chinese prompt set: the default template of each kind, the output contract added after any template, and
the blocks that guidance and styles fill in."""

NONE = "（暂无）"

TAGS = """你正在为一个知识领域构建分类体系，用于生成语言模型的训练数据。

{guidance}

标签路径：{path}

请为该路径的最后一级提出恰好 {count} 个子主题。每个子主题必须：
- 明确属于整个路径的范围，且与同级子主题互不重叠、不是同义词；
- 是简短的名词短语（2-12 个字），具体到可以据此提出专业问题；
- 与其他子主题一起覆盖父主题的广度。

已有子主题（不要重复或换种说法）：
{existing}

请用中文回答。"""

QUESTIONS = """你为微调领域专家语言模型编写问题。

{guidance}

标签路径：{path}

请围绕该标签路径的最后一级、结合整个路径的语境，编写恰好 {count} 个问题。问题必须：
- 自成一体：无需其他上下文即可理解，并点明所问的概念；
{style}
- 不能用简单的"是"或"否"回答；
- 彼此不同，也不同于下面已有的问题。

已有问题（不要重复或换种说法）：
{existing}

请用中文编写问题。"""

ANSWER = """你是{path}方面的专家。请准确、全面地回答用户的问题。

{guidance}

{answer_style}"""

JUDGE = """你为领域专家语言模型的训练数据评分。

{guidance}

{answer_style}

领域：{path}

问题：
{question}

待评分的答案：
{answer}

请为答案打 1 到 10 分：10 = 正确、完整、清晰，本身即可完整回答问题；7 = 良好，有小的欠缺；4 = 部分错误、含糊或不完整；1 = 错误、离题或为空。
请用中文写一两句评分理由。"""

EVAL_JUDGE = """你对照强大的教师模型写出的参考答案，为学生模型的答案评分。

{guidance}

领域：{path}

问题：
{question}

参考答案（视为正确）：
{reference}

待评分的学生答案：
{answer}

请按学生答案与参考答案相比的正确性和完整性打 1 到 10 分：10 = 与参考答案同样正确完整；7 = 正确但有小的欠缺；4 = 部分错误或缺少要点；1 = 错误、离题或为空。措辞和长度可以与参考答案不同。
请用中文写一两句评分理由。"""

TEMPLATES = {"tags": TAGS, "questions": QUESTIONS, "answer": ANSWER, "judge": JUDGE, "eval_judge": EVAL_JUDGE}

# 无论模板如何，都附加在其后，使回复保持解析器和 JSON schema 所要求的形式。
CONTRACTS = {
    "tags": """只回复一个 JSON 对象 {{"tags": [...]}}，其列表恰好包含 {count} 个字符串，每个字符串是{parent}的一个子主题的真实名称：不要写带编号的标签或占位符，也不要写{parent}本身。""",
    "questions": """只回复一个 JSON 对象 {{"questions": [...]}}，其列表恰好包含 {count} 个字符串，每个字符串是关于{parent}的一个完整问题：不要写带编号的标签或占位符。""",
    "answer": """先在 <think> 和 </think> 之间逐步思考问题；然后在 </think> 之后写出给用户的最终答案，答案本身应完整。请用中文回答。""",
    "judge": """只回复如下形式的 JSON 对象：{{"score": 7, "rationale": "..."}}""",
    "eval_judge": """只回复如下形式的 JSON 对象：{{"score": 7, "rationale": "..."}}""",
}

# 默认模板与其输出约定的衔接方式（自定义模板之后空一行）：与一直以来的提示词完全相同。
CONTRACT_JOINS = {"tags": "", "questions": "", "answer": "\n", "judge": "", "eval_judge": "\n"}

GUIDANCE = "数据集所有者的要求（请遵循）：\n{text}"
ANSWER_STYLE = "答案风格（针对最终答案）：\n{text}"
MAX_WORDS = "- 不超过 {count} 字"
FORMATS = {"prose": "连贯的段落", "steps": "编号步骤", "bullets": "要点列表", "code": "代码块", "tables": "表格",
           "worked_example": "至少一个完整的例题"}
USE_FORMATS = "- 使用{formats}"
STYLE_DEFAULT_TYPE = """- 类型多样：事实类、"为什么"和"怎样"的概念类、分析类、比较类、应用场景类和解决问题类；"""
STYLE_DEFAULT_DIFFICULTY = "- 难度多样，从入门到专家；"
STYLE_PLAN = "- 按以下计划依次编写：第 n 个问题对应第 n 行（{dimensions}）："
STYLE_DIMENSIONS = {"type": "类型", "difficulty": "难度", "audience": "受众"}
STYLE_LINE = "  {number}. {parts}"
STYLE_PART = "{dimension}：{value}"
STYLE_JOIN = "；"
LIST_JOIN = "、"

FORMAT_FEEDBACK = """你的回复无法使用：{error}
请重新回复，只给出所要求形式的 JSON 对象，并包含所要求数量的新条目。"""

REASONING_FEEDBACK = """你的回复缺少推理部分。请重新回复：先在 <think> 和 </think> 之间写出逐步推理，再给出最终答案。"""

FOLLOWUP = """你扮演与一位{path}领域专家对话的用户，用于生成对话模型的训练数据。
{persona}
{guidance}

目前的对话：
{transcript}

请写出用户的下一条消息：一个自然的追问，要依赖于已经说过的内容，例如请对方澄清某一点、深入探讨、提出反例，或把回答应用到具体情境中。不要重复之前的消息，也不要自己回答。
只回复用户的下一条消息，使用中文，不加标签，不加引号。"""
FOLLOWUP_PERSONA = "这位用户是：{audience}。"
FOLLOWUP_USER = "用户"
FOLLOWUP_ASSISTANT = "专家"
FOLLOWUP_FEEDBACK = """这条回复无法使用：{error}。请重新写出用户的下一条消息：一个新的追问，只写消息本身。"""
FOLLOWUP_EMPTY = "内容为空"
FOLLOWUP_REPEATED = "它重复了之前的用户消息"
