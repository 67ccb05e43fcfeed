"""The `course` command: open the course, make workbooks, show progress.

    course open [OPTIONS]       JupyterLab on the course folder (unknown options go to JupyterLab)
    course test [OPTIONS]       the whole test suite: pytest in the course folder (options go to pytest)
    course workbook [--out DIR] blank student workbooks (default: workbooks/)
    course progress [DIR]       run the workbooks and tabulate every exercise (--json for scripts)
    course execute NOTEBOOK...  (for authors) run notebooks in place and store their outputs
    course slides [NN ...] [--out DIR] [--lang ko]  reveal.js slide decks that work offline (default: slides/)
    course bench [--quick]      our attention and Transformer against PyTorch's: one table of ratios
    course translations [--update] [--build]  the Korean edition: what is translated, fuzzy, built
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from helpers.checks.language import LANGUAGES
from helpers.course.files import write_text
from helpers.course.notebooks import CourseError, course_root, execute, one_line, read_notebook

#: JupyterLab's own interface in Korean: its language pack's locale, set in a settings folder of the course's own.
KOREAN_LAB_LOCALE = "ko_KR"


def edition(lang: str) -> str:
    """The subfolder of an edition: "" for English (notebooks/, workbooks/, slides/), "ko" for notebooks/ko/ …"""
    return "" if lang == "en" else lang


def notebooks_folder(root: Path, lang: str, doing: str = "to open") -> Path:
    folder = root / "notebooks" / edition(lang)
    if not folder.is_dir():
        raise CourseError(f"no Korean edition {doing}: {folder} does not exist (it is built from the English "
                          "notebooks and locale/ko/: `course translations --build`)")
    return folder


def korean_lab_settings(root: Path) -> Path:
    """A JupyterLab user-settings folder whose only setting is the Korean interface (if its language pack is there)."""
    folder = root / ".course-cache" / "lab-settings-ko"
    plugin = folder / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(f'{{"locale": "{KOREAN_LAB_LOCALE}"}}\n', encoding="utf-8")
    return folder


def open_command(root: Path, port: int | None = None, extra: Sequence[str] = (), lang: str = "en") -> list[str]:
    """The command that starts JupyterLab on the course folder (on notebooks/ko, in Korean, for lang="ko")."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={root}",
        # Land on the notebooks folder; workbooks/ sits beside it in the same file browser.
        "--LabApp.default_url=/lab/tree/notebooks" + ("" if lang == "en" else f"/{lang}"),
    ]
    if lang == "ko":
        command.append(f"--LabApp.user_settings_dir={korean_lab_settings(root)}")
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    return command + list(extra)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def cmd_open(args: argparse.Namespace) -> int:
    root = course_root()
    notebooks_folder(root, args.lang)
    command = open_command(root, args.port, args.extra, args.lang)
    # JupyterLab refuses to start as root with a bare "Running as root is not recommended";
    # in a container or a Binder-like image root is normal, so say what to do instead.
    if is_root() and "--allow-root" not in args.extra:
        raise CourseError(
            "you are root (as in a container), and JupyterLab will not start as root unless told: "
            "run `course open --allow-root` (or open the course as an ordinary user)"
        )
    if args.dry_run:
        print(" ".join(command))
        return 0
    print(f"course open: starting JupyterLab on {root} (Ctrl-C to stop)", flush=True)
    return subprocess.call(command)


def cmd_test(args: argparse.Namespace) -> int:
    root = course_root()
    command = [sys.executable, "-m", "pytest", *args.extra]
    print(f"course test: running pytest in {root} (unit tests, then every notebook under strict nbval)", flush=True)
    return subprocess.call(command, cwd=root)


def cmd_workbook(args: argparse.Namespace) -> int:
    from helpers.course.workbook import write_workbooks

    root = course_root()
    out = Path(args.out) if args.out else root / "workbooks" / edition(args.lang)
    report = write_workbooks(notebooks_folder(root, args.lang, "to copy"), out, force=args.force)
    for name in report.written:
        print(f"wrote     {out / name}")
    for name in report.unchanged:
        print(f"unchanged {out / name}")
    for name in report.backups:
        print(f"backed up {out / name} (your edited copy, before --force replaced it)")
    if report.kept:
        print(f"kept {len(report.kept)} workbook(s) you have edited: {', '.join(report.kept)}")
        print(f"  to replace them with blank copies run `course workbook --force"
              f"{' --out ' + str(args.out) if args.out else ''}` (a backup of each is kept)")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from helpers.course.progress import as_json, collect_workbooks, format_report

    default = course_root() / "workbooks" / edition(args.lang or "en")
    folder = Path(args.folder) if args.folder else default
    # Korean workbooks (workbooks/ko) report in Korean unless told otherwise.
    language = args.lang or ("ko" if folder.resolve().name == "ko" else "en")
    books = collect_workbooks(folder, show_bar=not (args.no_bar or args.json))
    print(as_json([row for book in books for row in book.rows]) if args.json else format_report(books, language))
    return 0


def cmd_execute(args: argparse.Namespace) -> int:
    import nbformat
    from nbclient.exceptions import CellExecutionError

    paths = [Path(name) for name in args.notebooks]
    for path in paths:  # every path is checked before the first (long) run
        if not path.is_file():
            raise CourseError(f"no notebook at {path}")
        if not os.access(path, os.W_OK):
            raise CourseError(f"cannot write to {path}: permission denied")
    for path in paths:
        nb = read_notebook(path)
        try:
            execute(nb, cwd=path.parent.resolve())
        except CellExecutionError as exc:  # its message is the cell's whole traceback
            evalue = (exc.evalue or "").strip().splitlines()
            raise CourseError(f"{path} was left unchanged: a cell raised {exc.ename}: {evalue[0] if evalue else ''}"
                              ) from None
        write_text(path, nbformat.writes(nb))
        print(f"executed {path}")
    return 0


def cmd_slides(args: argparse.Namespace) -> int:
    from helpers.course.slides import export_decks

    root = course_root()
    folder = notebooks_folder(root, args.lang, "to present")
    out = Path(args.out) if args.out else root / "slides" / edition(args.lang)
    report = export_decks(folder, out, args.numbers, lang=args.lang, make_parent=not args.out)
    for deck in report.decks:
        print(f"wrote {deck.path} ({deck.slides} slides)")
    print(f"open {report.index} in a browser (no network needed); in a deck press S for the speaker view")
    return 0


def cmd_translations(args: argparse.Namespace) -> int:
    from helpers.course import translations as tr

    root = course_root()
    if args.collected and not Path(args.collected).is_file():
        raise CourseError(f"no collection file at {args.collected}")
    if args.update:
        for notebook in tr.notebook_paths(root / "notebooks"):
            kept, fuzzy, new = tr.update_catalogue(notebook, tr.catalogue_path(root, notebook))
            if fuzzy or new:
                print(f"{tr.catalogue_path(root, notebook).relative_to(root)}: {fuzzy} changed (fuzzy), {new} new")
        entries, new = tr.update_checks_catalogue(root, Path(args.collected) if args.collected else None)
        if new:
            print(f"{tr.checks_catalogue_path(root).relative_to(root)}: {new} new of {entries}")
    if args.build:
        for path in tr.write_edition(root):
            print(f"built {path.relative_to(root)}")
    rows = tr.status(root)
    print(tr.table(rows))
    texts, translated, fuzzy = tr.checks_status(root)
    label = "the checks' messages (checks.po)"
    print(f"{label:<38} {texts:>5} {translated:>10} {fuzzy:>5} "
          f"{texts - translated - fuzzy:>12}")
    incomplete = [r.notebook for r in rows if not r.complete]
    if incomplete or translated < texts:
        what = [f"{len(incomplete)} of {len(rows)} notebooks"] if incomplete else []
        what += [f"{texts - translated} of the checks' {texts} texts"] if translated < texts else []
        print(f"course translations: {' and '.join(what)} not complete in {tr.LANGUAGE_NAME} (translate the "
              "fuzzy and untranslated entries in locale/ko/*.po, then `course translations --build`)")
        return 1
    print(f"course translations: all {len(rows)} notebooks translated, and notebooks/ko/ equals a fresh build")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Attention, step by step: the course command.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("open", help="start JupyterLab on the course folder (other options go to JupyterLab)")
    p.add_argument("--port", type=int, default=None, help="port for JupyterLab")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="ko: the Korean notebooks, JupyterLab in Korean")
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("test", help="run the whole test suite (other options go to pytest)")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("workbook", help="write blank student workbooks (never overwrites your edits)")
    p.add_argument("--out", default=None, help="folder for the workbooks (default: workbooks/ in the course)")
    p.add_argument("--force", action="store_true", help="replace edited workbooks too, keeping a backup of each")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="ko: from the Korean notebooks, into workbooks/ko")
    p.set_defaults(func=cmd_workbook)

    p = sub.add_parser("progress", help="run the workbooks and show every exercise's status")
    p.add_argument("folder", nargs="?", default=None, help="workbook folder (default: workbooks/ in the course)")
    p.add_argument("--no-bar", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--lang", choices=LANGUAGES, default=None,
                   help="the report's language (default: ko for workbooks/ko, else en)")
    p.set_defaults(func=cmd_progress)

    p = sub.add_parser("execute", help="(authors) run notebooks top to bottom and save their outputs")
    p.add_argument("notebooks", nargs="+", help="notebook files")
    p.set_defaults(func=cmd_execute)

    p = sub.add_parser("slides", help="export reveal.js slide decks that work with no network")
    p.add_argument("numbers", nargs="*", metavar="NN", help="notebook numbers, e.g. 03 or 3 (default: all)")
    p.add_argument("--out", default=None, help="folder for the decks (default: slides/, or slides/ko/ for ko)")
    p.add_argument("--lang", choices=LANGUAGES, default="en",
                   help="en: the notebooks in notebooks/ (default); ko: the Korean edition in notebooks/ko/")
    p.set_defaults(func=cmd_slides)
    p = sub.add_parser("bench", help="measure the course's code against PyTorch's: one table of ratios")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (seconds; not for reporting)")
    p.add_argument("--no-notebooks", action="store_true", help="skip executing every notebook (the longest row)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: $COURSE_DEVICE, else a GPU if present)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: as in the notebooks)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median is reported)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("translations", help="the Korean edition: list what is translated; exit 1 unless complete")
    p.add_argument("--update", action="store_true", help="bring locale/ko/*.po in step with the English notebooks")
    p.add_argument("--build", action="store_true", help="write notebooks/ko/ from the English notebooks and catalogues")
    p.add_argument("--collected", default=None, metavar="FILE",
                   help="with --update: also the checks' messages a run with COURSE_COLLECT_CHECK_TEXTS=FILE wrote")
    p.set_defaults(func=cmd_translations)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from helpers.course.bench import format_table, run_benchmark

    try:
        header, rows = run_benchmark(quick=args.quick, notebooks=not args.no_notebooks, device=args.device,
                                     threads=args.threads, repeats=args.repeats,
                                     progress=lambda text: print(text, file=sys.stderr, flush=True))
    except ValueError as exc:  # an unknown device, a device that is not there, repeats < 1
        raise CourseError(str(exc)) from None
    print(format_table(header, rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `course open` and `course test` pass options they do not know on (to JupyterLab, to pytest).
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("open", "test"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"course {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a disk that is full, a folder that vanished, a file another program locked
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"course {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("COURSE_DEBUG"):
            raise
        print(f"course {args.command}: unexpected {one_line(exc)} (a bug: run again with COURSE_DEBUG=1 "
              "for the traceback, and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    sys.exit(main())
