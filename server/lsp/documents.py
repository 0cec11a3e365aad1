"""Open documents as the sidecar reads them (uri to path, LSP position to proof site), and
what it remembers of each between requests."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlparse

from lsprotocol import types

from segpilot.lean.positions import DocumentPositions, LspPosition, PositionError, TextPosition
from segpilot.lean.source import NotInProof, ProofSite, proof_site

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)


def uri_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


class DocumentSite(NamedTuple):
    """A proof site in an open document, with what was read to find it."""

    text: str
    version: int | None
    site: ProofSite
    positions: DocumentPositions

    def start(self) -> LspPosition:
        """Where the site's typed text starts (where a suggestion goes), in LSP units."""
        return self.positions.text_to_lsp(TextPosition(self.site.line, self.site.column))


def site_at(ls: LanguageServer, uri: str, position: types.Position) -> DocumentSite | None:
    """The proof site at an LSP position of an open document; None (with a log line) when
    the document is not open, the position is outside it, or it is not in a tactic proof."""
    document = ls.workspace.text_documents.get(unquote(uri))
    if document is None:
        log.warning("request for %s, which is not open: empty answer", uri)
        return None
    text = document.source
    positions = DocumentPositions(text)
    try:
        where = positions.lsp_to_text(LspPosition(position.line, position.character))
    except PositionError as err:
        log.warning("position %d:%d in %s: %s", position.line, position.character, uri, err)
        return None
    try:
        site = proof_site(text, where.line, where.column)
    except NotInProof as why:
        log.debug("no suggestion at %d:%d: %s", position.line, position.character, why)
        return None
    return DocumentSite(text, document.version, site, positions)


@dataclass(frozen=True)
class ClientGoals:
    """Goals the editor reported (`segpilot/goalState`) for a document version and position."""

    version: int | None
    line: int
    character: int
    goals: tuple[str, ...]


@dataclass
class DocumentState:
    """What the sidecar remembers of one open document between requests."""

    last_count: int | None = None
    """The goal count last seen at the document's cursor."""
    client_goals: ClientGoals | None = None
    probe: asyncio.Future[Any] | None = None
    """The pending look at the goals after an edit."""

    def cancel_probe(self) -> None:
        if self.probe is not None:
            self.probe.cancel()
            self.probe = None
