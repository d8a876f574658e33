"""`/v1/collections`: a tenant's document collections for the `rag` tool: create, list,
delete, add documents (chunked and embedded here) and search. A tenant sees only its own
collections (`taskloom.sdk.collections` namespaces them in the vector service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.requests import HTTPConnection

from taskloom.gateway.deps import TenantDep
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.models import (
    CollectionCreate,
    CollectionList,
    CollectionOut,
    CollectionSearch,
    DocumentCreate,
    DocumentOut,
    HitOut,
    SearchOut,
)
from taskloom.gateway.openapi import problems
from taskloom.sdk.collections import CollectionError, CollectionInfo, Collections
from taskloom.sdk.embeddings import EmbeddingError

router = APIRouter(prefix="/v1/collections", tags=["collections"])

Name = Annotated[str, Path(min_length=1, max_length=64)]

_STATUS = {
    "COLLECTION_NOT_FOUND": 404,
    "COLLECTION_EXISTS": 409,
    "INVALID_ARGUMENT": 422,
    "DIMENSION_MISMATCH": 422,
    "CAPACITY_EXCEEDED": 429,
}


def _collections(conn: HTTPConnection) -> Collections:
    found: Collections | None = conn.app.state.collections
    if found is None:
        raise ProblemError(
            503, "UNAVAILABLE", "Collections are off: the gateway has no vector_addr."
        )
    return found


def _problem(err: CollectionError) -> ProblemError:
    errors = [{"field": err.field, "message": err.message}] if err.field else []
    return ProblemError(_STATUS.get(err.reason, 503), err.reason, err.message, errors=errors)


def _embedding_problem(err: EmbeddingError) -> ProblemError:
    return ProblemError(503, "UNAVAILABLE", f"The embedder failed: {err}")


def _out(info: CollectionInfo) -> CollectionOut:
    return CollectionOut(name=info.name, dimension=info.dimension, chunks=info.chunks)


@router.post("", status_code=201, response_model=CollectionOut, responses=problems(400, 409, 413))
async def create_collection(
    conn: HTTPConnection, body: CollectionCreate, tenant: TenantDep, response: Response
) -> CollectionOut:
    try:
        info = await _collections(conn).create(tenant, body.name)
    except CollectionError as err:
        raise _problem(err) from err
    response.headers["Location"] = f"/v1/collections/{info.name}"
    return _out(info)


@router.get("", response_model=CollectionList, responses=problems())
async def list_collections(conn: HTTPConnection, tenant: TenantDep) -> CollectionList:
    try:
        found = await _collections(conn).list_collections(tenant)
    except CollectionError as err:
        raise _problem(err) from err
    return CollectionList(collections=[_out(c) for c in found])


@router.get("/{name}", response_model=CollectionOut, responses=problems(404))
async def get_collection(conn: HTTPConnection, name: Name, tenant: TenantDep) -> CollectionOut:
    try:
        return _out(await _collections(conn).get(tenant, name))
    except CollectionError as err:
        raise _problem(err) from err


@router.delete("/{name}", status_code=204, responses=problems(404))
async def delete_collection(conn: HTTPConnection, name: Name, tenant: TenantDep) -> Response:
    try:
        await _collections(conn).delete(tenant, name)
    except CollectionError as err:
        raise _problem(err) from err
    return Response(status_code=204)


@router.post(
    "/{name}/documents",
    status_code=201,
    response_model=DocumentOut,
    responses=problems(400, 404, 413),
)
async def add_document(
    conn: HTTPConnection, name: Name, body: DocumentCreate, tenant: TenantDep
) -> DocumentOut:
    try:
        document_id, chunks = await _collections(conn).add_document(
            tenant, name, body.text, document_id=body.id, metadata=body.metadata
        )
    except CollectionError as err:
        raise _problem(err) from err
    except EmbeddingError as err:
        raise _embedding_problem(err) from err
    return DocumentOut(document_id=document_id, chunks=chunks)


@router.post("/{name}/search", response_model=SearchOut, responses=problems(400, 404, 413))
async def search_collection(
    conn: HTTPConnection, name: Name, body: CollectionSearch, tenant: TenantDep
) -> SearchOut:
    try:
        hits = await _collections(conn).search(
            tenant, name, query=body.query, vector=body.vector, top_k=body.top_k
        )
    except CollectionError as err:
        raise _problem(err) from err
    except EmbeddingError as err:
        raise _embedding_problem(err) from err
    return SearchOut(
        hits=[
            HitOut(
                text=h.text,
                score=h.score,
                document_id=h.document_id,
                chunk=h.chunk,
                metadata=h.metadata,
            )
            for h in hits
        ]
    )
