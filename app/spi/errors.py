"""The SPI layer's root exception: adapters translate infrastructure errors into these."""


class SpiError(Exception):
    """Root of every error a port may raise."""


class ConcurrencyConflict(SpiError):
    """An append named a sequence number that is already taken (optimistic concurrency)."""


class StoreUnavailable(SpiError):
    """The backing store could not be reached; the operation may be retried."""


class StoredValueTooLarge(SpiError):
    """A value over what one stored record may hold; nothing was written."""
