"""`softpool-video export CKPT --format onnx|pt2|torchscript|safetensors --out DIR`.

    softpool-video export runs/demo/checkpoints/last.ckpt --format onnx --out exported/
    softpool-video export CKPT --format pt2 --decompose --out exported/
    softpool-video export CKPT --format all --out exported/

Every export is reloaded (ONNX: run by onnxruntime on a real clip) and compared with the
PyTorch model: logits within atol + rtol x the row's largest |logit| and the same top-5
classes (near-ties aside); the largest absolute and relative differences are printed.
"""
from __future__ import annotations

import argparse
import json
import sys

from softpool_video.checkpoint import CheckpointError
from softpool_video.export import FORMATS, ExportError, ParityClipError, export_checkpoint
from softpool_video.reporting import NoSpaceLeft

from ._console import console, fail, print_table, setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softpool-video export", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="Lightning checkpoint of a VideoClassifier (.ckpt)")
    parser.add_argument("--format", "-f", dest="formats", action="append", choices=[*FORMATS, "all"],
                        required=True, help="output format (repeat for several, or 'all')")
    parser.add_argument("--out", "-o", required=True, help="output folder (created if needed)")
    parser.add_argument("--decompose", action="store_true",
                        help="pt2: replace the SoftPool op by standard aten ops (file needs only torch)")
    parser.add_argument("--video", default=None,
                        help="video for the parity check (default: the first decodable video of the "
                             "checkpoint's test, then validation, list)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-verify", action="store_true", help="ONNX: skip the onnxruntime parity check")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _summary(result: dict) -> dict:
    check = result.get("verification") or {}
    return {"format": result["format"], "files": [str(f) for f in result["files"]],
            "max_abs_diff": check.get("max_abs_diff"), "max_rel_diff": check.get("max_rel_diff"),
            "rtol": check.get("rtol"), "atol": check.get("atol"), "top_k": check.get("top_k"),
            "top_k_match": check.get("top_k_match"),
            "runtime": check.get("runtime"), "batch_sizes": check.get("batch_sizes"), "input": result["input"],
            **({"softpool_op_kept": result["softpool_op_kept"]} if "softpool_op_kept" in result else {})}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(verbose=False)
    formats = list(FORMATS) if "all" in args.formats else list(dict.fromkeys(args.formats))
    summaries, failed = [], []
    for fmt in formats:
        try:
            result = export_checkpoint(args.checkpoint, fmt, args.out, video=args.video, decompose=args.decompose,
                                       opset=args.opset, verify=not args.no_verify)
        except (CheckpointError, FileNotFoundError, ParityClipError) as err:  # the same for every format
            return fail("export", err)
        except NoSpaceLeft as err:  # the others would not fit either
            return fail("export", err, code=1)
        except ExportError as err:  # this format failed; the others may not
            fail("export", f"{fmt}: {err}", code=1)
            failed.append(fmt)
            continue
        summaries.append(_summary(result))
    if args.json:
        print(json.dumps({"exports": summaries, "failed": failed}, indent=2))
    else:
        _print_table(args.checkpoint, summaries)
    return 1 if failed else 0


def _print_table(checkpoint: str, summaries: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=f"export of {checkpoint}")
    for column in ("format", "files", "max abs / rel diff", "checked with"):
        table.add_column(column)
    for s in summaries:
        diff = "not run" if s["max_abs_diff"] is None else (
            f"{s['max_abs_diff']:.2e} / {s['max_rel_diff']:.2e}\n(rtol {s['rtol']:g}, atol {s['atol']:g}; "
            f"top-{s['top_k']} {'same' if s['top_k_match'] else 'differ'})")
        table.add_row(s["format"], "\n".join(s["files"]), diff,
                      f"{s['runtime']}, batch {s['batch_sizes']}" if s["runtime"] else "")
    out = console()
    print_table(table, out)
    if summaries:
        out.print(f"parity input: {summaries[0]['input']}", markup=False)
