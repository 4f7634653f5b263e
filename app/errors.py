"""Domain exceptions. Each message says what went wrong and what the user can do about it.

Only ``app/api.py`` turns these into HTTP errors and only ``app/cli.py`` into exit codes.
"""


class DescriberError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(DescriberError):
    """A video or subtitles source could not be fetched (missing file, bad URL, HTTP error)."""


class InputTooLarge(InputError):
    """A download exceeded the configured size limit."""


class DiskFull(DescriberError):
    """The temporary disk filled up while a download was written to it."""


class DownloadFolderError(DescriberError):
    """The folder downloads go to cannot be used: it cannot be made or written, is not a
    folder, or (the default one, in the shared temporary folder) is not this user's own."""


class VideoOpenFailure(DescriberError):
    """The file is not a decodable video (not media, truncated, empty, or no video stream)."""


class DecoderUnavailable(DescriberError):
    """The configured decode device (NVDEC through FFmpeg) cannot be used on this machine."""


class VideoIncomplete(VideoOpenFailure):
    """The video breaks off part-way (truncated or damaged): only its start could be decoded."""


class VideoTimestampsJump(VideoOpenFailure):
    """The video's timestamps jump back part-way (recordings joined end to end): the frames
    after the jump have no place on its timeline."""


class VideoTooLong(DescriberError):
    """The video is longer than the configured maximum duration."""


class SubtitleError(DescriberError):
    """The subtitles file holds no usable cue or cannot be decoded."""


class ModelLoadError(DescriberError):
    """A captioning model could not be found or loaded."""


class WordNetMissing(DescriberError):
    """WordNet, needed by METEOR for synonym matching, is not installed."""


class PluginUnavailable(DescriberError, ValueError):
    """A plug-in (captioner, detector, voice...) is asked for by a name that is unknown, or it
    needs a package that is not installed; the message says which one to install. A
    ``ValueError`` too, so that settings and request validators report it as a bad value."""


class Stopped(Exception):
    """The caller's stop signal interrupted the work; it can be run again from the start."""


class VoiceError(DescriberError):
    """A text-to-speech engine or voice cannot be used (not installed, unknown, damaged)."""


class RenderError(DescriberError):
    """Narration audio or the film with its description track cannot be written."""


class EndpointError(DescriberError):
    """A remote captioning endpoint refused a request, failed, or answered something unusable;
    the message names the endpoint and quotes its answer."""


class TranslatorMissing(DescriberError):
    """Descriptions must be translated into the viewer's language and no translator is set."""
