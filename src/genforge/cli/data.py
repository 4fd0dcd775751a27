"""`genforge data list|info NAME|fetch NAME`: which data sets exist and where they are."""

from __future__ import annotations

import argparse

from ..data import DATASETS, dataset_info, fetch, load_dataset
from ..data.folder import parse_background
from ..errors import DataError


def background_colour(text: str) -> str:
    """The --background flag's value, checked now (a colour name, #rrggbb or R,G,B) and kept as written."""
    try:
        parse_background(text)
    except DataError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


BACKGROUND_HELP = ("the colour transparency is composited onto, for emoji and folders of PNGs: a name "
                   "(white, black), #rrggbb or R,G,B (default white)")


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="list, describe and fetch data sets",
                       description="List, describe and fetch the named data sets (any folder of images "
                                   "works too: --dataset folder:PATH).")
    p.add_argument("--data-dir", help="look here first for data files")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=type(p))
    verbs.add_parser("list", help="the named data sets and whether they were found")
    for verb, help in (("info", "where a data set is, its size, splits and classes"),
                       ("fetch", "make sure a data set is on disk (downloads it if needed); with --background, "
                                 "decode it with that background too, so training starts at once")):
        v = verbs.add_parser(verb, help=help)
        v.add_argument("name")
        v.add_argument("--background", type=background_colour, help=BACKGROUND_HELP)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.verb == "list":
        for name in DATASETS:
            info = dataset_info(name, args.data_dir)
            c, h, w = info["shape"]
            where = info["found"] or "not found (genforge data fetch %s)" % name
            labels = f"{len(info['classes'])} classes" if info["classes"] else "no labels"
            print(f"{name:15s} {h}x{w}x{c}  {labels}  {where}")
    elif args.verb == "info":
        info = dataset_info(args.name, args.data_dir)
        _check_background(args.name, args.background, info)
        c, h, w = info["shape"]
        print(f"name:     {info['name']}")
        print(f"found in: {info['found'] or 'not found'}")
        print(f"images:   {h}x{w}, {c} channel(s)")
        for split, n in (info.get("splits") or {}).items():
            print(f"{split + ':':9s} " + (f"{n} images" if n is not None else "not found"))
        print(f"classes:  {', '.join(info['classes']) or 'none'}")
        for heading, text in (info.get("notes") or {}).items():
            print(f"{heading + ':':9s} {text}")
        print(f"licence:  {info.get('licence', '')}")
        if info.get("citation"):
            print(f"cite:     {info['citation']}")
        if "background" in info["takes"]:
            print(f"background: {args.background or 'white'} (transparent pixels are composited onto it)")
    else:
        _check_background(args.name, args.background, dataset_info(args.name, args.data_dir))
        found = fetch(args.name, args.data_dir)
        for split, paths in found.items():
            print(f"{split}: {', '.join(str(p) for p in paths)}")
        if args.background:
            for split in found:  # decoded now and cached, so the first run with this background starts at once
                n = len(load_dataset(args.name, split, data_dir=args.data_dir, background=args.background))
                print(f"{split}: {n} images decoded onto {args.background}")
    return 0


def _check_background(name: str, background: str | None, info: dict) -> None:
    if background is not None and "background" not in info["takes"]:
        raise DataError(f"{info['name']} has no transparency, so --background does not apply to it; "
                        "it is for emoji (and folder:PATH data sets in genforge train)")
