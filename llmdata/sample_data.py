"""The bundled demo corpus, built deterministically from text every Python installation carries.

Good documents are the standard library's docstrings (read with `ast`, never imported, so no
module's import side effects run) and the `pydoc_data` help topics. Into them the generator plants
the noise a real crawl has, each piece labelled so the stages can be scored against it:
exact and near duplicates, junk documents, and bad records that must be quarantined.

A multilingual slice follows (`MULTILINGUAL_DOCS`: short manuals written for the demo in Chinese,
Japanese, Korean, Thai, Russian, Arabic, Hindi and Hebrew) with its own planted duplicates and
junk; its labels carry `lang`. It is appended after the English part, which it leaves unchanged.
"""
from __future__ import annotations

import ast
import gzip
import inspect
import json
import math
import os
import random
import string
import sysconfig
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator, Optional

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo", "ensurepip"}
_MAX_DOC_CHARS = 1800


@dataclass
class Document:
    text: str
    source: str
    kind: str
    meta: dict = field(default_factory=dict)


def _signature(node: ast.AST) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        try:
            return f"{node.name}({ast.unparse(node.args)})"
        except Exception:
            return f"{node.name}(...)"
    return getattr(node, "name", "")


def _module_sections(tree: ast.Module) -> list[str]:
    sections = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("__"):
            doc = ast.get_docstring(node)
            if not doc:
                continue
            head = ("class " if isinstance(node, ast.ClassDef) else "def ") + _signature(node)
            parts = [f"{head}\n\n{inspect.cleandoc(doc)}"]
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and (not sub.name.startswith("_") or sub.name == "__init__"):
                        sdoc = ast.get_docstring(sub)
                        if sdoc:
                            parts.append(f"    {node.name}.{_signature(sub)}\n\n{inspect.cleandoc(sdoc)}")
            sections.append("\n\n".join(parts))
    return sections


def stdlib_documents() -> Iterator[Document]:
    """Module manuals from the standard library's docstrings, split into documents of a few KB."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    for path in sorted(paths):
        rel = os.path.relpath(path, root)
        module = rel[:-3].replace(os.sep, ".").removesuffix(".__init__")
        try:
            with open(path, "rb") as f:
                source = f.read()
            tree = ast.parse(source)
        except (SyntaxError, ValueError, OSError):
            continue
        n_lines = source.count(b"\n")
        defs = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)
        chunks: list[str] = []
        head = ast.get_docstring(tree)
        current = f"{module}\n{'=' * len(module)}\n\n{inspect.cleandoc(head)}" if head else ""
        for section in _module_sections(tree):
            if current and len(current) + len(section) > _MAX_DOC_CHARS:
                chunks.append(current)
                current = f"{module} (continued)\n\n{section}"
            else:
                current = f"{current}\n\n{section}" if current else f"{module}\n\n{section}"
        if current:
            chunks.append(current)
        for part, text in enumerate(chunks):
            if len(text) < 200:
                continue
            meta = {"module": module, "part": part, "n_lines": n_lines, "n_defs": defs, "depth": module.count(".")}
            yield Document(text, f"stdlib:{module}", "docstring", meta)


def pydoc_documents() -> Iterator[Document]:
    """The interpreter's help topics: language reference prose."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = topics[name].strip()
        if len(text) >= 200:
            yield Document(text, f"pydoc:{name}", "topic", {"module": name, "n_lines": text.count("\n"), "depth": 0})


# ---------------------------------------------------------------- planted noise

def near_duplicate(text: str, rng: random.Random, rate: float = 0.03) -> str:
    """A copy with a few word edits (substitute, delete, insert) and sometimes a new header line."""
    lines = text.split("\n")
    out_lines = []
    for line in lines:
        words = line.split(" ")
        new = []
        for w in words:
            r = rng.random()
            if r < rate / 3 and w:
                continue
            if r < 2 * rate / 3 and w:
                new.append(w[::-1] if len(w) > 3 else w.upper())
            else:
                new.append(w)
            if rng.random() < rate / 3:
                new.append(rng.choice(["very", "also", "then", "just", "here"]))
        out_lines.append(" ".join(new))
    out = "\n".join(out_lines)
    if rng.random() < 0.5:
        out = f"Mirror copy, retrieved {rng.randint(2015, 2025)}.\n\n{out}"
    return out


def gibberish(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(8, 40)):
        words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 14))) for _ in range(rng.randint(6, 16))]
        lines.append(" ".join(words))
    return "\n".join(lines)


def repeated_token(rng: random.Random) -> str:
    token = rng.choice(["buy", "click", "lorem", "spam", "hello", "free", "download", "viagra", "best"])
    per_line = rng.randint(5, 20)
    return "\n".join(" ".join([token] * per_line) for _ in range(rng.randint(20, 120)))


def huge_log_dump(rng: random.Random) -> str:
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN"]
    lines = [
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d} {rng.choice(levels)} worker-{rng.randint(0, 64)} batch {rng.randint(0, 10**6)} "
        f"took {rng.random():.3f}s rows={rng.randint(0, 10**5)}"
        for _ in range(rng.randint(12_000, 20_000))
    ]
    return "\n".join(lines)


def huge_blob(rng: random.Random) -> str:
    import base64

    raw = rng.randbytes(rng.randint(300_000, 500_000))
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def tiny(rng: random.Random) -> str:
    return rng.choice(["ok", "Click here", "1", "See above.", "N/A", "thanks!!", "Home | Next", "Loading...", "404", "x"])


def symbol_soup(rng: random.Random) -> str:
    alphabet = "#$%^&*(){}[]<>|\\/~`@+=_-;:!?.,'\"§¤°±"
    return "\n".join("".join(rng.choice(alphabet + " ") for _ in range(rng.randint(40, 100))) for _ in range(rng.randint(5, 30)))


JUNK_MAKERS = {
    "junk:gibberish": (gibberish, 40),
    "junk:repeated_token": (repeated_token, 40),
    "junk:huge_log": (huge_log_dump, 3),
    "junk:huge_blob": (huge_blob, 2),
    "junk:tiny": (tiny, 40),
    "junk:symbol_soup": (symbol_soup, 40),
}


def bad_lines(rng: random.Random, good_ids: list[str]) -> list[tuple[bytes, str]]:
    """Raw jsonl lines that must end in quarantine (or a counted drop), with the expected reason."""
    out: list[tuple[bytes, str]] = []
    for i in range(8):
        line = json.dumps({"id": f"broken-{i}", "text": "A record cut short in transit"})
        out.append((line[: rng.randint(5, len(line) - 2)].encode(), "invalid_json"))
    out.append((b"{'id': 'single-quotes', 'text': 'python repr, not JSON'}", "invalid_json"))
    out.append((b'{"id": "trailing-comma", "text": "x",}', "invalid_json"))
    for i in range(8):
        good = json.dumps({"id": f"latin1-{i}", "text": "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"}, ensure_ascii=False)
        out.append((good.encode("latin-1"), "invalid_utf8"))
    out.append((b'{"id": "bad-bytes", "text": "\xff\xfe\xfd garbage"}', "invalid_utf8"))
    out.append((b'{"id": "lone-surrogate", "text": "half of an emoji \\ud83d and nothing after"}', "invalid_unicode"))
    for i in range(5):
        out.append((json.dumps({"id": f"no-text-{i}", "body": "the text is under another key"}).encode(), "missing_text"))
        out.append((json.dumps({"id": f"null-text-{i}", "text": None}).encode(), "null_text"))
        out.append((json.dumps({"id": f"empty-text-{i}", "text": ""}).encode(), "empty_text"))
        out.append((json.dumps({"id": f"ws-text-{i}", "text": " \n\t  \n"}).encode(), "whitespace_text"))
    for i, value in enumerate([42, 3.5, ["a", "list"], {"nested": "object"}, True, [1, 2]]):
        out.append((json.dumps({"id": f"nonstring-{i}", "text": value}).encode(), "non_string_text"))
    for value in (["not", "an", "object"], "just a string", 17, None):
        out.append((json.dumps(value).encode(), "not_an_object"))
    out.append((json.dumps({"id": ["a", "list"], "text": "An id that is a list is not an id."}).encode(), "invalid_id"))
    for i in range(5):
        dup = rng.choice(good_ids)
        out.append((json.dumps({"id": dup, "text": f"Another document claiming id {dup}, number {i}."}).encode(), "duplicate_id"))
    for _ in range(3):
        out.append((b"", "blank_line"))
    return out


# ---------------------------------------------------------------- multilingual slice

#: Short technical-manual documents written for the demo (the same four topics in each language:
#: configuration, backup, log rotation, common errors), so the stages' per-language funnel has
#: real text in scripts without spaces (zh, ja, th), other scripts (ko, ru, ar, hi, he) and
#: right-to-left text.
MULTILINGUAL_DOCS: dict[str, tuple[str, ...]] = {
    "zh": (
        "配置文件说明\n\n服务启动时会读取 /etc/llmpipe/config.yaml 文件。\n如果该文件不存在，程序将使用内置的默认值。\n每个选项都可以通过命令行参数覆盖，例如 --set clean.outliers.iqr_k=2.5。\n修改配置后，需要重新启动服务才能生效。\n建议在修改之前先备份原始文件。",
        "数据备份与恢复\n\n系统每天凌晨两点自动创建一次完整备份，并保留最近七天的备份文件。\n备份文件保存在 /var/backups 目录中，文件名包含创建日期。\n恢复数据时，请先停止服务，然后运行 restore 命令并指定备份文件的路径。\n恢复完成后，程序会检查每个文件的校验和，确认数据没有损坏。",
        "日志轮转\n\n日志文件默认写入 /var/log/llmpipe 目录。\n当单个日志文件超过一百兆字节时，系统会将其压缩并创建新的文件。\n旧的日志最多保留三十天，之后会被自动删除。\n如果磁盘空间不足，可以在配置文件中减少保留的天数。",
        "常见错误排查\n\n如果程序启动失败并提示“端口已被占用”，说明另一个进程正在使用同一个端口。\n可以使用 ss -ltnp 命令查看是哪个进程占用了端口。\n如果提示“权限不足”，请检查当前用户是否属于 llmpipe 组。\n其他错误信息会记录在日志文件中，提交问题报告时请附上相关的日志内容。",
    ),
    "ja": (
        "設定ファイルについて\n\nサービスは起動時に /etc/llmpipe/config.yaml を読み込みます。\nファイルが存在しない場合は、組み込みの既定値が使われます。\n各オプションはコマンドライン引数で上書きできます。\n設定を変更した後は、サービスを再起動してください。\n変更する前に、元のファイルのバックアップを取ることをお勧めします。",
        "バックアップと復元\n\nシステムは毎日午前二時に完全なバックアップを作成し、直近七日分を保存します。\nバックアップファイルは /var/backups に置かれ、ファイル名には作成日が含まれます。\nデータを復元するときは、まずサービスを停止してから restore コマンドを実行し、バックアップファイルのパスを指定します。\n復元が終わると、各ファイルのチェックサムが確認されます。",
        "ログのローテーション\n\nログは既定で /var/log/llmpipe に書き込まれます。\n一つのログファイルが百メガバイトを超えると、圧縮されて新しいファイルが作られます。\n古いログは三十日間保存され、その後自動的に削除されます。\nディスクの空き容量が少ない場合は、設定ファイルで保存日数を減らしてください。",
        "よくあるエラー\n\n起動時に「ポートは使用中です」と表示された場合は、別のプロセスが同じポートを使っています。\nss -ltnp コマンドで、どのプロセスがポートを使っているかを確認できます。\n「権限がありません」と表示された場合は、現在のユーザーが llmpipe グループに属しているかを確認してください。\nその他のエラーはログファイルに記録されます。",
    ),
    "ko": (
        "설정 파일\n\n서비스는 시작할 때 /etc/llmpipe/config.yaml 파일을 읽습니다.\n파일이 없으면 내장된 기본값을 사용합니다.\n모든 옵션은 명령줄 인수로 덮어쓸 수 있습니다.\n설정을 바꾼 뒤에는 서비스를 다시 시작해야 합니다.\n변경하기 전에 원본 파일을 백업하는 것이 좋습니다.",
        "백업과 복원\n\n시스템은 매일 새벽 두 시에 전체 백업을 만들고 최근 칠 일 동안의 백업을 보관합니다.\n백업 파일은 /var/backups 디렉터리에 저장되며 파일 이름에 생성 날짜가 들어 있습니다.\n데이터를 복원하려면 먼저 서비스를 중지한 다음 restore 명령에 백업 파일 경로를 지정하여 실행합니다.\n복원이 끝나면 각 파일의 체크섬을 확인합니다.",
        "로그 순환\n\n로그는 기본적으로 /var/log/llmpipe 디렉터리에 기록됩니다.\n로그 파일 하나가 백 메가바이트를 넘으면 압축되고 새 파일이 만들어집니다.\n오래된 로그는 삼십 일 동안 보관된 뒤 자동으로 삭제됩니다.\n디스크 공간이 부족하면 설정 파일에서 보관 기간을 줄일 수 있습니다.",
        "자주 발생하는 오류\n\n시작할 때 \"포트가 이미 사용 중입니다\"라는 메시지가 나오면 다른 프로세스가 같은 포트를 쓰고 있는 것입니다.\nss -ltnp 명령으로 어떤 프로세스가 포트를 쓰는지 확인할 수 있습니다.\n\"권한이 없습니다\"라는 메시지가 나오면 현재 사용자가 llmpipe 그룹에 속해 있는지 확인하십시오.\n그 밖의 오류는 로그 파일에 기록됩니다.",
    ),
    "th": (
        "ไฟล์การตั้งค่า\n\nเมื่อเริ่มทำงาน\nบริการจะอ่านไฟล์ /etc/llmpipe/config.yaml หากไม่มีไฟล์นี้\nโปรแกรมจะใช้ค่าเริ่มต้นที่มีอยู่ในตัว\nตัวเลือกทุกตัวสามารถกำหนดใหม่ได้จากบรรทัดคำสั่ง\nหลังจากแก้ไขการตั้งค่าแล้ว\nต้องเริ่มบริการใหม่\nควรสำรองไฟล์เดิมไว้ก่อนแก้ไข",
        "การสำรองและกู้คืนข้อมูล\n\nระบบจะสร้างข้อมูลสำรองทั้งหมดทุกวันในเวลาตีสอง\nและเก็บข้อมูลสำรองของเจ็ดวันล่าสุดไว้\nไฟล์สำรองจะอยู่ในไดเรกทอรี /var/backups และชื่อไฟล์มีวันที่สร้าง\nเมื่อต้องการกู้คืนข้อมูล\nให้หยุดบริการก่อน\nแล้วจึงเรียกคำสั่ง restore พร้อมระบุตำแหน่งของไฟล์สำรอง",
        "การหมุนเวียนไฟล์บันทึก\n\nไฟล์บันทึกจะถูกเขียนไว้ที่ /var/log/llmpipe เมื่อไฟล์บันทึกมีขนาดเกินหนึ่งร้อยเมกะไบต์\nระบบจะบีบอัดไฟล์และสร้างไฟล์ใหม่\nไฟล์บันทึกเก่าจะถูกเก็บไว้สามสิบวันแล้วจึงถูกลบโดยอัตโนมัติ\nหากพื้นที่ดิสก์ไม่พอ\nสามารถลดจำนวนวันที่เก็บไว้ได้ในไฟล์การตั้งค่า",
        "ข้อผิดพลาดที่พบบ่อย\n\nหากโปรแกรมแจ้งว่าพอร์ตถูกใช้งานอยู่\nแสดงว่ามีโปรเซสอื่นใช้พอร์ตเดียวกัน\nสามารถใช้คำสั่ง ss -ltnp เพื่อดูว่าโปรเซสใดใช้พอร์ตนั้น\nหากโปรแกรมแจ้งว่าไม่มีสิทธิ์\nให้ตรวจสอบว่าผู้ใช้ปัจจุบันอยู่ในกลุ่ม llmpipe หรือไม่\nข้อผิดพลาดอื่นๆ\nจะถูกบันทึกไว้ในไฟล์บันทึก",
    ),
    "ru": (
        "Файл конфигурации\n\nПри запуске служба читает файл /etc/llmpipe/config.yaml.\nЕсли файла нет, используются встроенные значения по умолчанию.\nЛюбой параметр можно переопределить аргументом командной строки.\nПосле изменения конфигурации службу нужно перезапустить.\nПеред изменением рекомендуется сделать резервную копию исходного файла.",
        "Резервное копирование и восстановление\n\nКаждый день в два часа ночи система создаёт полную резервную копию и хранит копии за последние семь дней.\nФайлы копий лежат в каталоге /var/backups, а в имени файла указана дата создания.\nЧтобы восстановить данные, сначала остановите службу, затем запустите команду restore и укажите путь к файлу копии.\nПосле восстановления проверяются контрольные суммы всех файлов.",
        "Ротация журналов\n\nПо умолчанию журналы записываются в каталог /var/log/llmpipe.\nКогда файл журнала превышает сто мегабайт, он сжимается, и создаётся новый файл.\nСтарые журналы хранятся тридцать дней, после чего удаляются автоматически.\nЕсли на диске мало места, срок хранения можно уменьшить в файле конфигурации.",
        "Частые ошибки\n\nЕсли при запуске появляется сообщение «порт уже используется», значит, другой процесс занял тот же порт.\nКомандой ss -ltnp можно узнать, какой процесс использует порт.\nЕсли появляется сообщение «недостаточно прав», проверьте, входит ли текущий пользователь в группу llmpipe.\nОстальные ошибки записываются в файл журнала.",
    ),
    "ar": (
        "ملف الإعدادات\n\nتقرأ الخدمة عند بدء تشغيلها الملف /etc/llmpipe/config.yaml.\nإذا لم يكن الملف موجودا، يستخدم البرنامج القيم الافتراضية المضمنة.\nيمكن تغيير أي خيار من سطر الأوامر.\nبعد تعديل الإعدادات يجب إعادة تشغيل الخدمة.\nننصح بعمل نسخة احتياطية من الملف الأصلي قبل التعديل.",
        "النسخ الاحتياطي والاستعادة\n\nينشئ النظام نسخة احتياطية كاملة كل يوم في الساعة الثانية صباحا، ويحتفظ بنسخ الأيام السبعة الأخيرة.\nتحفظ الملفات في المجلد /var/backups ويحتوي اسم كل ملف على تاريخ إنشائه.\nلاستعادة البيانات أوقف الخدمة أولا، ثم شغل الأمر restore مع مسار ملف النسخة.\nبعد الاستعادة يتحقق البرنامج من المجموع الاختباري لكل ملف.",
        "تدوير السجلات\n\nتكتب السجلات افتراضيا في المجلد /var/log/llmpipe.\nعندما يتجاوز حجم ملف السجل مئة ميغابايت يضغطه النظام وينشئ ملفا جديدا.\nتحفظ السجلات القديمة ثلاثين يوما ثم تحذف تلقائيا.\nإذا كانت مساحة القرص غير كافية يمكنك تقليل مدة الحفظ في ملف الإعدادات.",
        "الأخطاء الشائعة\n\nإذا ظهرت رسالة «المنفذ مستخدم بالفعل» فهذا يعني أن عملية أخرى تستخدم المنفذ نفسه.\nيمكنك معرفة العملية باستخدام الأمر ss -ltnp.\nإذا ظهرت رسالة «لا توجد صلاحية» فتحقق من أن المستخدم الحالي عضو في المجموعة llmpipe.\nهل تبحث عن أخطاء أخرى؟\nتسجل جميع الأخطاء في ملف السجل.",
    ),
    "hi": (
        "कॉन्फ़िगरेशन फ़ाइल\n\nसेवा शुरू होते समय /etc/llmpipe/config.yaml फ़ाइल पढ़ती है।\nअगर यह फ़ाइल मौजूद नहीं है, तो प्रोग्राम अपने डिफ़ॉल्ट मान इस्तेमाल करता है।\nहर विकल्प को कमांड लाइन से बदला जा सकता है।\nसेटिंग बदलने के बाद सेवा को फिर से शुरू करना ज़रूरी है।\nबदलाव से पहले मूल फ़ाइल की बैकअप कॉपी बना लें।",
        "बैकअप और रीस्टोर\n\nसिस्टम हर रात दो बजे पूरा बैकअप बनाता है और पिछले सात दिनों के बैकअप रखता है।\nबैकअप फ़ाइलें /var/backups डायरेक्टरी में रहती हैं और फ़ाइल के नाम में उसकी तारीख होती है।\nडेटा वापस लाने के लिए पहले सेवा बंद करें, फिर restore कमांड को बैकअप फ़ाइल के पथ के साथ चलाएँ।\nरीस्टोर के बाद हर फ़ाइल का चेकसम जाँचा जाता है।",
        "लॉग रोटेशन\n\nलॉग फ़ाइलें डिफ़ॉल्ट रूप से /var/log/llmpipe में लिखी जाती हैं।\nजब कोई लॉग फ़ाइल सौ मेगाबाइट से बड़ी हो जाती है, तो सिस्टम उसे संपीड़ित करके नई फ़ाइल बनाता है।\nपुराने लॉग तीस दिन तक रखे जाते हैं और फिर अपने आप हटा दिए जाते हैं।\nअगर डिस्क में जगह कम है, तो कॉन्फ़िगरेशन फ़ाइल में दिनों की संख्या घटाई जा सकती है।",
        "आम त्रुटियाँ\n\nअगर शुरू होते समय \"पोर्ट पहले से इस्तेमाल में है\" संदेश दिखे, तो कोई दूसरी प्रक्रिया उसी पोर्ट का उपयोग कर रही है।\nss -ltnp कमांड से पता चलता है कि कौन सी प्रक्रिया पोर्ट का उपयोग कर रही है।\nअगर \"अनुमति नहीं है\" संदेश दिखे, तो जाँचें कि मौजूदा उपयोगकर्ता llmpipe समूह में है या नहीं।\nबाकी त्रुटियाँ लॉग फ़ाइल में दर्ज होती हैं।",
    ),
    "he": (
        "קובץ ההגדרות\n\nבעת ההפעלה השירות קורא את הקובץ /etc/llmpipe/config.yaml.\nאם הקובץ לא קיים, התוכנית משתמשת בערכי ברירת המחדל המובנים.\nאפשר לשנות כל אפשרות משורת הפקודה.\nלאחר שינוי ההגדרות יש להפעיל מחדש את השירות.\nמומלץ לגבות את הקובץ המקורי לפני השינוי.",
        "גיבוי ושחזור\n\nהמערכת יוצרת גיבוי מלא בכל יום בשעה שתיים בלילה ושומרת את הגיבויים של שבעת הימים האחרונים.\nקובצי הגיבוי נשמרים בתיקייה /var/backups ושם כל קובץ כולל את תאריך היצירה שלו.\nכדי לשחזר נתונים יש לעצור קודם את השירות, ואז להריץ את הפקודה restore עם הנתיב של קובץ הגיבוי.\nבסוף השחזור נבדק סכום הביקורת של כל קובץ.",
        "סבב יומנים\n\nכברירת מחדל היומנים נכתבים לתיקייה /var/log/llmpipe.\nכאשר קובץ יומן עובר מאה מגה-בייט, המערכת דוחסת אותו ויוצרת קובץ חדש.\nיומנים ישנים נשמרים שלושים יום ואז נמחקים באופן אוטומטי.\nאם אין מספיק מקום בדיסק, אפשר לקצר את תקופת השמירה בקובץ ההגדרות.",
        "שגיאות נפוצות\n\nאם בעת ההפעלה מופיעה ההודעה \"הפורט כבר בשימוש\", תהליך אחר משתמש באותו פורט.\nהפקודה ss -ltnp מראה איזה תהליך משתמש בפורט.\nאם מופיעה ההודעה \"אין הרשאה\", יש לבדוק אם המשתמש הנוכחי שייך לקבוצה llmpipe.\nשגיאות אחרות נרשמות בקובץ היומן.",
    ),
}


def one_char_edit(text: str, rng: random.Random) -> str:
    """`text` with one letter in its middle half replaced by another letter from the same text
    (so from the same script): the smallest near duplicate."""
    lo, hi = len(text) // 4, 3 * len(text) // 4
    positions = [i for i in range(lo, hi) if text[i].isalpha() and not text[i].isascii()] or [i for i in range(lo, hi) if text[i].isalpha()]
    i = rng.choice(positions)
    pool = sorted({c for c in text if c.isalpha() and c != text[i] and c.isascii() == text[i].isascii()})
    return text[:i] + rng.choice(pool) + text[i + 1 :]


def random_cjk_lines(rng: random.Random) -> str:
    """Random Han characters in lines that end with 。: looks like Chinese to a script counter."""
    return "\n".join(
        "".join(chr(rng.randrange(0x4E00, 0x9FA6)) for _ in range(rng.randint(12, 30))) + "\u3002" for _ in range(rng.randint(6, 14))
    )


def mojibake(text: str) -> str:
    """UTF-8 bytes read as cp1252 (the five bytes cp1252 leaves undefined read as Latin-1)."""
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in text.encode("utf-8"))


def multilingual_slice(seed: int) -> tuple[list[dict], list[dict]]:
    """The demo's multilingual records and labels: MULTILINGUAL_DOCS, an exact copy and a
    one-character edit in several languages, random-Han and mojibake junk. Labels name the
    language (`good:zh`, `good:ja:near_dup`, `junk:zh:mojibake`), so the clean report's table per
    label is a funnel per language; dedup's evaluation still sees `...exact_dup`/`...near_dup`.
    Uses its own random.Random, so the English part of the corpus is the same with or without it."""
    rng = random.Random(f"multilingual-{seed}")
    records: list[dict] = []
    labels: list[dict] = []
    for lang, texts in MULTILINGUAL_DOCS.items():
        for i, text in enumerate(texts):
            rid = f"{lang}-doc-{i}"
            records.append({"id": rid, "text": text, "source": f"manual:{lang}", "meta": {"kind": "manual", "lang": lang}})
            labels.append({"id": rid, "label": f"good:{lang}", "lang": lang})
    originals = list(records)
    for lang in ("zh", "ja", "th", "ru"):
        src = rng.choice([r for r in originals if r["meta"]["lang"] == lang])
        records.append({**src, "id": f"{lang}-exact-0"})
        labels.append({"id": f"{lang}-exact-0", "label": f"good:{lang}:exact_dup", "lang": lang, "duplicate_of": src["id"]})
    for lang in MULTILINGUAL_DOCS:
        src = rng.choice([r for r in originals if r["meta"]["lang"] == lang])
        records.append({**src, "id": f"{lang}-edit-0", "text": one_char_edit(src["text"], rng)})
        labels.append({"id": f"{lang}-edit-0", "label": f"good:{lang}:near_dup", "lang": lang, "duplicate_of": src["id"]})
    for j in range(3):
        records.append({"id": f"random-cjk-{j}", "text": random_cjk_lines(rng), "source": "web:crawl", "meta": {"kind": "junk", "lang": "zh"}})
        labels.append({"id": f"random-cjk-{j}", "label": "junk:zh:random_cjk", "lang": "zh"})
    for lang in ("zh", "ja", "ru", "ar"):
        src = rng.choice([r for r in originals if r["meta"]["lang"] == lang])
        records.append({"id": f"mojibake-{lang}", "text": mojibake(src["text"]), "source": "web:crawl", "meta": {"kind": "junk", "lang": lang}})
        labels.append({"id": f"mojibake-{lang}", "label": f"junk:{lang}:mojibake", "lang": lang})
    return records, labels


@lru_cache(maxsize=1)
def good_documents() -> tuple[Document, ...]:
    """Parsing the whole standard library takes seconds; do it once per process."""
    return tuple(stdlib_documents()) + tuple(pydoc_documents())


def build_corpus(seed: int = 0, max_docs: Optional[int] = None, multilingual: bool = True) -> tuple[list[bytes], list[dict], dict]:
    """All lines of the demo corpus in their final order, the labels, and a summary of what is planted.

    multilingual: append the multilingual slice (`multilingual_slice`) after the English part.
    """
    rng = random.Random(seed)
    docs = list(good_documents())
    rng.shuffle(docs)
    if max_docs:
        docs = docs[:max_docs]
    records: list[dict] = []
    labels: list[dict] = []
    for i, d in enumerate(docs):
        doc_id = f"doc-{i:05d}"
        meta = dict(d.meta, kind=d.kind, seq=i)
        # Crawl time grows with the sequence; 10% of it is lost and interpolated back.
        meta["crawl_ts"] = None if rng.random() < 0.10 else round(1.7e9 + i * 600 + rng.uniform(-60, 60))
        if rng.random() < 0.03:
            meta.pop("n_lines", None)
        if "n_defs" in meta and rng.random() < 0.08:
            meta["n_defs"] = None
        if rng.random() < 0.2:
            meta["rating"] = round(rng.uniform(1, 5), 1)
        if i == 7:
            meta["n_lines"] = math.nan  # NaN is not JSON; the reader turns it into a gap
        records.append({"id": doc_id, "text": d.text, "source": d.source, "meta": meta})
        labels.append({"id": doc_id, "label": "good"})
    n_good = len(records)
    for j in range(max(1, n_good // 20)):
        src = records[rng.randrange(n_good)]
        records.append({**src, "id": f"exact-{j:04d}"})
        labels.append({"id": f"exact-{j:04d}", "label": "good:exact_dup", "duplicate_of": src["id"]})
    for j in range(max(1, n_good // 20)):
        src = records[rng.randrange(n_good)]
        # Edit rates from 0.5% to 4% of words put the copies on both sides of a 0.8 threshold.
        records.append({**src, "id": f"near-{j:04d}", "text": near_duplicate(src["text"], rng, rng.uniform(0.005, 0.04))})
        labels.append({"id": f"near-{j:04d}", "label": "good:near_dup", "duplicate_of": src["id"]})
    scale = max(n_good / 4000, 0.05)
    for label, (maker, count) in JUNK_MAKERS.items():
        for j in range(max(1, round(count * scale)) if "huge" not in label else count):
            jid = f"{label.split(':')[1]}-{j:03d}"
            records.append({"id": jid, "text": maker(rng), "source": "web:crawl", "meta": {"kind": "junk", "seq": n_good + len(labels)}})
            labels.append({"id": jid, "label": label})
    lines: list[tuple[bytes, str]] = [(json.dumps(r, ensure_ascii=False).encode("utf-8"), "ok") for r in records]
    lines += bad_lines(rng, [r["id"] for r in records[:n_good]])
    rng.shuffle(lines)
    # Appended after the shuffle, from its own random.Random: the English lines keep their order.
    ml_records, ml_labels = multilingual_slice(seed) if multilingual else ([], [])
    lines += [(json.dumps(r, ensure_ascii=False).encode("utf-8"), "ok") for r in ml_records]
    labels += ml_labels
    summary: dict = {"lines": len(lines)}
    for _, reason in lines:
        if reason != "ok":
            summary[f"bad:{reason}"] = summary.get(f"bad:{reason}", 0) + 1
    for lab in labels:
        summary[lab["label"]] = summary.get(lab["label"], 0) + 1
        if "lang" in lab:
            summary[f"lang:{lab['lang']}"] = summary.get(f"lang:{lab['lang']}", 0) + 1
    return [raw for raw, _ in lines], labels, dict(sorted(summary.items()))


def write_corpus(output: str, seed: int = 0, shards: int = 4, max_docs: Optional[int] = None, multilingual: bool = True) -> dict:
    """Write `shard-NNNN.jsonl.gz` files, `labels.jsonl` and `sample_manifest.json` into `output`.

    Gzip headers carry no timestamp, so the same seed gives byte-identical files.
    """
    lines, labels, summary = build_corpus(seed, max_docs, multilingual)
    os.makedirs(output, exist_ok=True)
    per_shard = math.ceil(len(lines) / shards)
    for s in range(shards):
        path = os.path.join(output, f"shard-{s:04d}.jsonl.gz")
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            for line in lines[s * per_shard : (s + 1) * per_shard]:
                f.write(line + b"\n")
    with open(os.path.join(output, "labels.jsonl"), "w", encoding="utf-8") as f:
        for lab in labels:
            f.write(json.dumps(lab) + "\n")
    return summary
