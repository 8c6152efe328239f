"""How the hook's calls travel: the route table, one call and its answer, decoding, retries, and the
sync (requests) and async (aiohttp) transports with their connection pools.

``routes``   :data:`~.routes.ROUTES`, :class:`~.routes.Call`, :class:`~.routes.Answer`, the request log line
``payloads`` what each call sends: its JSON body and query parameters, from checked arguments
``answers``  an answer turned into a value or a :class:`~airflow_provider_cdata.exceptions.CDataAPIError`
``body``     :class:`~.body.BodyReader`: a body decoded as it comes, never past :data:`~.body.MAX_BODY_BYTES`
``retry``    :class:`~.retry.RetryPolicy`, the one policy of both paths
``sync``     :class:`~.sync.SyncTransport`: one ``requests.Session`` per hook
``aio``      :class:`~.aio.AsyncTransport`: one ``aiohttp.ClientSession`` per event loop, shared by its hooks

Nothing here mints tokens or reads the Airflow connection: the hook gives each send a token and the
settings. The public names are re-exported by :mod:`airflow_provider_cdata.hooks`.
"""
