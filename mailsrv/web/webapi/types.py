"""The webapi's request and response types, with mox's webapi v0 field names (mox's `webapi`
Go package), so an application written for mox works unchanged.

Requests decode strictly: an unknown field or a wrong type is an error that names the field
(mox's decoder refuses unknown fields too). Absent fields take their zero value, as in Go.
The OpenAPI document of `GET <path>openapi.json` is generated from these classes.
"""

from __future__ import annotations

import datetime

import msgspec

# --- shared -----------------------------------------------------------------------------


class Error(msgspec.Struct):
    """The body of an HTTP 400 answer."""

    Code: str
    Message: str


class NameAddress(msgspec.Struct, forbid_unknown_fields=True):
    Name: str = ""  # display name, optional
    Address: str = ""  # email address, required


class Message(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A message: what Send composes, what MessageGet shows."""

    From: list[NameAddress] = []
    To: list[NameAddress] = []
    CC: list[NameAddress] = []
    BCC: list[NameAddress] = []
    ReplyTo: list[NameAddress] = []
    MessageID: str = ""
    References: list[str] = []
    Date: datetime.datetime | None = None
    Subject: str = ""
    Text: str = ""
    HTML: str = ""


# --- Send -------------------------------------------------------------------------------


class File(msgspec.Struct, forbid_unknown_fields=True):
    Name: str = ""
    ContentType: str = ""  # guessed from the name when empty
    ContentID: str = ""  # "<id>", for cid: references from the HTML
    Data: bytes = b""  # standard base64 in JSON


class SendRequest(Message, forbid_unknown_fields=True, kw_only=True):
    Extra: dict[str, str] = {}
    Headers: list[tuple[str, str]] = []
    AlternativeFiles: list[File] = []
    InlineFiles: list[File] = []
    AttachedFiles: list[File] = []
    RequireTLS: bool | None = None
    FutureRelease: datetime.datetime | None = None
    SaveSent: bool = False


class Submission(msgspec.Struct):
    Address: str
    QueueMsgID: int
    FromID: str


class SendResult(msgspec.Struct):
    MessageID: str
    Submissions: list[Submission]


# --- suppression lists ------------------------------------------------------------------


class Suppression(msgspec.Struct):
    ID: int
    Created: datetime.datetime
    Account: str
    BaseAddress: str
    OriginalAddress: str
    Manual: bool
    Reason: str


class SuppressionListRequest(msgspec.Struct, forbid_unknown_fields=True):
    pass


class SuppressionListResult(msgspec.Struct):
    Suppressions: list[Suppression]


class SuppressionAddRequest(msgspec.Struct, forbid_unknown_fields=True):
    EmailAddress: str = ""
    Manual: bool = False
    Reason: str = ""


class SuppressionAddResult(msgspec.Struct):
    pass


class SuppressionRemoveRequest(msgspec.Struct, forbid_unknown_fields=True):
    EmailAddress: str = ""


class SuppressionRemoveResult(msgspec.Struct):
    pass


class SuppressionPresentRequest(msgspec.Struct, forbid_unknown_fields=True):
    EmailAddress: str = ""


class SuppressionPresentResult(msgspec.Struct):
    Present: bool


# --- messages ---------------------------------------------------------------------------


class Structure(msgspec.Struct):
    ContentType: str
    ContentTypeParams: dict[str, str]
    ContentID: str
    ContentDisposition: str
    Filename: str
    DecodedSize: int
    Parts: list[Structure]


class MessageMeta(msgspec.Struct):
    Size: int
    DSN: bool
    Flags: list[str]
    MailFrom: str
    MailFromValidated: bool
    RcptTo: str
    MsgFrom: str
    MsgFromValidated: bool
    DKIMVerifiedDomains: list[str]
    RemoteIP: str
    MailboxName: str


class MessageGetRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0


class MessageGetResult(msgspec.Struct):
    Message: Message
    Structure: Structure
    Meta: MessageMeta


class MessageRawGetRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0


class MessagePartGetRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0
    PartPath: list[int] = []  # indexes into the sub-parts of multiparts, from the top


class MessageDeleteRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0


class MessageDeleteResult(msgspec.Struct):
    pass


class MessageFlagsAddRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0
    Flags: list[str] = []


class MessageFlagsAddResult(msgspec.Struct):
    pass


class MessageFlagsRemoveRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0
    Flags: list[str] = []


class MessageFlagsRemoveResult(msgspec.Struct):
    pass


class MessageMoveRequest(msgspec.Struct, forbid_unknown_fields=True):
    MsgID: int = 0
    DestMailboxName: str = ""


class MessageMoveResult(msgspec.Struct):
    pass
