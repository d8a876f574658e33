"""Document collections of a tenant, kept in the vector service: documents are cut into
overlapping chunks of words, embedded, and stored as points; searches embed the query
and return the nearest chunks. Shared by the gateway (REST) and the worker (`rag` tool).

Tenants never see each other's collections: each lives in the vector service under
`c<16 hex of sha256(tenant)>-<name>`, and every call goes through that name."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from taskloom.sdk import tracing
from taskloom.sdk.embeddings import Embedder
from taskloom.v1 import vector_pb2, vector_pb2_grpc

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
NAME_RULE = "1 to 40 of a-z, 0-9, _ and -, starting with a letter or digit"
CHUNK_WORDS = 200
OVERLAP_WORDS = 40
MAX_TOP_K = 100
_PREFIX = re.compile(r"\b[cms][0-9a-f]{16}-")


class CollectionError(Exception):
    """A request the collection refused: `reason` is a taskloom.v1.ErrorReason name,
    `field` the request field at fault (may be empty)."""

    def __init__(self, reason: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


def vector_name(tenant: str, name: str, kind: str = "c") -> str:
    return f"{_tenant_prefix(tenant, kind)}{name}"


def _tenant_prefix(tenant: str, kind: str = "c") -> str:
    """`kind` keeps families apart: `c` document collections, `m` agents' memories,
    `s` the semantic cache."""
    return f"{kind}{hashlib.sha256(tenant.encode()).hexdigest()[:16]}-"


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise CollectionError("INVALID_ARGUMENT", f"collection name must be {NAME_RULE}", "name")


def chunk_words(text: str, size: int = CHUNK_WORDS, overlap: int = OVERLAP_WORDS) -> list[str]:
    """The text as runs of `size` words, each sharing `overlap` words with the one before
    (so a sentence cut at a boundary is whole in one of them)."""
    words = text.split()
    step = size - overlap
    return [" ".join(words[i : i + size]) for i in range(0, max(len(words) - overlap, 1), step)]


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dimension: int
    chunks: int


@dataclass(frozen=True)
class Hit:
    text: str
    score: float
    document_id: str
    chunk: int
    metadata: dict[str, Any] = field(default_factory=dict)


class Collections:
    def __init__(
        self, vector_addr: str, embedder: Embedder, *, kind: str = "c", timeout_s: float = 10.0
    ) -> None:
        self.kind = kind
        self.vector_addr = vector_addr
        self._channel = tracing.aio_channel(vector_addr)
        self._stub = vector_pb2_grpc.VectorServiceStub(self._channel)
        self.embedder = embedder
        self._timeout_s = timeout_s

    async def create(self, tenant: str, name: str) -> CollectionInfo:
        check_name(name)
        request = vector_pb2.CreateCollectionRequest(
            name=vector_name(tenant, name, self.kind),
            dimension=self.embedder.dimension,
            distance=vector_pb2.DISTANCE_COSINE,
        )
        resp = await self._call(self._stub.CreateCollection, request, name)
        return _info(name, resp.collection)

    async def get(self, tenant: str, name: str) -> CollectionInfo:
        check_name(name)
        request = vector_pb2.GetCollectionRequest(name=vector_name(tenant, name, self.kind))
        resp = await self._call(self._stub.GetCollection, request, name)
        return _info(name, resp.collection)

    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        prefix, found, token = _tenant_prefix(tenant, self.kind), [], ""
        while True:
            request = vector_pb2.ListCollectionsRequest(page_size=1000, page_token=token)
            resp = await self._call(self._stub.ListCollections, request, "")
            found += [
                _info(c.name.removeprefix(prefix), c)
                for c in resp.collections
                if c.name.startswith(prefix)
            ]
            token = resp.next_page_token
            if not token:
                return sorted(found, key=lambda c: c.name)

    async def delete(self, tenant: str, name: str) -> None:
        check_name(name)
        request = vector_pb2.DeleteCollectionRequest(name=vector_name(tenant, name, self.kind))
        await self._call(self._stub.DeleteCollection, request, name)

    async def add_document(
        self,
        tenant: str,
        name: str,
        text: str,
        *,
        document_id: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[str, int]:
        """Chunks, embeds and stores a document; returns its id and its number of chunks.
        A document id given again replaces the chunks it had (as far as they go)."""
        check_name(name)
        if not text.strip():
            raise CollectionError("INVALID_ARGUMENT", "the document has no text", "text")
        await self.get(tenant, name)  # unknown collection: refused before embedding
        document_id = document_id or uuid.uuid4().hex
        chunks = chunk_words(text)
        vectors = await self.embedder.embed(chunks)
        points = []
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
            payload = struct_pb2.Struct()
            payload.update(
                {"text": chunk, "document_id": document_id, "chunk": i, **dict(metadata or {})}
            )
            points.append(vector_pb2.Point(id=f"{document_id}:{i}", vector=vector, payload=payload))
        request = vector_pb2.UpsertRequest(
            collection=vector_name(tenant, name, self.kind), points=points
        )
        await self._call(self._stub.Upsert, request, name)
        return document_id, len(chunks)

    async def put(
        self,
        tenant: str,
        name: str,
        points: Sequence[tuple[str, Sequence[float], Mapping[str, Any]]],
    ) -> None:
        """Stores (id, vector, payload) points as they are (no chunking, no embedding)."""
        protos = []
        for point_id, vector, payload in points:
            struct = struct_pb2.Struct()
            struct.update(dict(payload))
            protos.append(vector_pb2.Point(id=point_id, vector=vector, payload=struct))
        request = vector_pb2.UpsertRequest(
            collection=vector_name(tenant, name, self.kind), points=protos
        )
        await self._call(self._stub.Upsert, request, name)

    async def delete_below(self, tenant: str, name: str, below: Mapping[str, float]) -> int:
        """Deletes every point whose payload holds a number under one of `below`'s keys
        lower than its bound (the vector service scans the payloads); returns how many."""
        check_name(name)
        request = vector_pb2.DeletePointsRequest(
            collection=vector_name(tenant, name, self.kind),
            where_below=[
                vector_pb2.PayloadBelow(key=key, less_than=bound) for key, bound in below.items()
            ],
        )
        resp = await self._call(self._stub.DeletePoints, request, name)
        return int(resp.deleted)

    async def search(
        self,
        tenant: str,
        name: str,
        *,
        query: str = "",
        vector: Sequence[float] = (),
        top_k: int = 5,
        where: Mapping[str, str] | None = None,
    ) -> list[Hit]:
        """The chunks nearest to `query` (embedded here) or to a given `vector`."""
        check_name(name)
        if not 1 <= top_k <= MAX_TOP_K:
            raise CollectionError("INVALID_ARGUMENT", f"top_k must be 1 to {MAX_TOP_K}", "top_k")
        if bool(query.strip()) == bool(vector):
            raise CollectionError(
                "INVALID_ARGUMENT", "give either a non-empty query or a vector", "query"
            )
        if not vector:
            vector = (await self.embedder.embed([query]))[0]
        request = vector_pb2.SearchRequest(
            collection=vector_name(tenant, name, self.kind),
            vector=vector,
            top_k=top_k,
            with_payload=True,
            filter=dict(where or {}),
        )
        resp = await self._call(self._stub.Search, request, name)
        hits = []
        for hit in resp.hits:
            payload = json_format.MessageToDict(hit.payload)
            text, doc, chunk = (
                payload.pop("text", ""),
                payload.pop("document_id", ""),
                payload.pop("chunk", 0),
            )
            hits.append(Hit(str(text), float(hit.score), str(doc), int(chunk), payload))
        return hits

    async def _call(self, method: Any, request: Any, name: str) -> Any:
        try:
            return await method(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as err:
            raise _refusal(err, name) from err

    async def aclose(self) -> None:
        await self._channel.close()


def _info(name: str, c: vector_pb2.Collection) -> CollectionInfo:
    return CollectionInfo(name, c.dimension, c.points)


def _refusal(err: grpc.aio.AioRpcError, name: str) -> CollectionError:
    """The vector service's refusal in the collection's terms (its ErrorInfo reason and
    BadRequest field; the tenant's prefix never shows)."""
    reason, fld = "", ""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for packed in status_pb2.Status.FromString(value).details:
                info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if packed.Unpack(info):
                    reason = info.reason.removeprefix("ERROR_REASON_")
                elif packed.Unpack(bad) and bad.field_violations:
                    fld = bad.field_violations[0].field
    code = err.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return CollectionError("COLLECTION_NOT_FOUND", f"collection {name!r} does not exist")
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return CollectionError("COLLECTION_EXISTS", f"collection {name!r} already exists", "name")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        detail = _PREFIX.sub("", err.details() or "")
        return CollectionError(reason or "INVALID_ARGUMENT", detail, fld)
    return CollectionError(
        "UNAVAILABLE", f"the vector service failed: {code.name} {err.details()}", ""
    )
