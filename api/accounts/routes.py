"""``/v1/me`` and ``/v1/api-keys``, with the ``/v1/auth`` routes they depend on."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.auth.api_keys import TooManyKeysError, create_api_key, list_api_keys, revoke_api_key
from api.auth.principal import ApiKeyCacheDep, CurrentUser
from api.auth.routes import router as auth_router
from api.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyPublic, UserPublic
from api.deps import SessionDep
from api.problems import Problem, not_found, problem_responses

router = APIRouter()
router.include_router(auth_router)


@router.get(
    "/v1/me",
    operation_id="me_get",
    response_model=UserPublic,
    tags=["account"],
    summary="The calling user",
    responses=problem_responses(401),
)
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)


@router.post(
    "/v1/api-keys",
    operation_id="api_keys_create",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    tags=["api-keys"],
    summary="Create an API key; the key is shown only in this response",
    responses=problem_responses(400, 401, 413, 422, described={409: "Too many active keys"}),
)
async def create_key(body: ApiKeyCreate, user: CurrentUser, db: SessionDep) -> ApiKeyCreated:
    try:
        key, secret = await create_api_key(
            db, user_id=user.id, name=body.name, daily_credit_cap=body.daily_credit_cap
        )
    except TooManyKeysError as error:
        raise Problem(409, str(error)) from None
    return ApiKeyCreated(id=key.id, name=key.name, key=secret)


@router.get(
    "/v1/api-keys",
    operation_id="api_keys_list",
    response_model=ApiKeyList,
    tags=["api-keys"],
    summary="The caller's active API keys",
    responses=problem_responses(401),
)
async def list_keys(user: CurrentUser, db: SessionDep) -> ApiKeyList:
    keys = await list_api_keys(db, user_id=user.id)
    return ApiKeyList(items=[ApiKeyPublic.of(key) for key in keys])


@router.delete(
    "/v1/api-keys/{key_id}",
    operation_id="api_keys_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["api-keys"],
    summary="Revoke an API key; it stops working at once",
    responses=problem_responses(401, 404, 422),
)
async def delete_key(
    key_id: uuid.UUID, user: CurrentUser, db: SessionDep, cache: ApiKeyCacheDep
) -> Response:
    if not await revoke_api_key(db, user_id=user.id, key_id=key_id):
        raise not_found("API key")
    # The other API processes hear of it when it commits (api.auth.key_revocations); this
    # one must not wait for its own listener.
    cache.forget_key(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
