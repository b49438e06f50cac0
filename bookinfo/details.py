"""Bookinfo ``details``: the book's publication details as JSON at ``/details/<id>``."""

from __future__ import annotations

import re

from bookinfo._http import Handler, Identity, parse_args, serve
from bookinfo.catalogue import DETAILS


class DetailsHandler(Handler):
    def handle_get(self, path: str, query: dict[str, list[str]]) -> None:
        match = re.fullmatch(r"/details/(\d+)", path)
        if not match:
            super().handle_get(path, query)
            return
        self.send_json(200, {"id": int(match.group(1)), **DETAILS})


def main(argv: list[str] | None = None) -> None:
    args = parse_args("details", argv)
    serve(DetailsHandler, Identity("details", args.version), args)


if __name__ == "__main__":
    main()
