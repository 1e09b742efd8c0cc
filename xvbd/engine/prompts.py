"""The system prompts the engine plays, by what they mean.

Each is a file of Asterisk's core sounds (Debian's ``asterisk-core-sounds-*``); the
channel's language (``xvb.EN-Female`` …) picks the directory Asterisk finds it in.  A
language pack may put its own recording under the same name.
"""

ENTER_ACCESS_CODE = "agent-user"     # "... please enter your ... number followed by pound"
ENTER_PIN = "agent-pass"             # "please enter your password followed by pound"
PIN_INCORRECT = "auth-incorrect"     # "password incorrect ..."
NO_SUCH_CODE = "pbx-invalid"         # "I'm sorry, that's not a valid extension ..."
TOO_MANY_TRIES = "vm-goodbye"
TRY_LATER = "please-try-call-later"  # throttled, or the call's time is up
NOT_IN_SERVICE = "ss-noservice"      # a locked user, a number with no user
NO_FUNDS = "please-try-call-later"  # the balance cannot pay for the call
ALL_BUSY = "tt-allbusy"              # the group's or the user's call limit is reached
INVALID_CHOICE = "pbx-invalid"
NOT_AVAILABLE = "cannot-complete-as-dialed"  # an extension type the group does not allow
GOODBYE = "vm-goodbye"
ERROR = "tt-somethingwrong"          # xvbd failed: said instead of dead air
LEAVE_MESSAGE = "vm-intro"           # "please leave your message after the tone ..."
MESSAGE_SAVED = "vm-msgsaved"
MESSAGE_TOO_SHORT = "vm-tooshort"
MAILBOX_FULL = "vm-mailboxfull"
HOLD_WHILE_TRYING = "pls-hold-while-try"
NOBODY_AVAILABLE = "vm-nobodyavail"
