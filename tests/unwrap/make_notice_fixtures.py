"""Write the delivery-notice and auto-reply fixtures into ``fixtures/notices/``.

``.venv/bin/python tests/unwrap/make_notice_fixtures.py`` — each notice written the way its
server's documentation and public samples show it (qmail's QSBMF, Exim, Postfix and Sendmail
without DSN, Gmail, Yahoo, Exchange 2003, OpenSMTPD, Amazon SES and WorkMail, Google Groups,
mail.ru, Domino), addresses and hosts replaced by example ones. The files are committed; the
tests read them (``test_unwrap_notices.py``) and never call this.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent / "fixtures" / "notices"
ORIGINAL_HEADERS = """\
Return-Path: <alice@corp.example>
Received: from mx.corp.example by out.corp.example; Tue, 04 Mar 2025 09:15:00 +0100
From: Alice Agent <alice@corp.example>
To: Bob <bob@customer.example>
Subject: Your quote
Date: Tue, 04 Mar 2025 09:15:00 +0100
Message-ID: <quote-7@corp.example>
"""


def head(frm: str, subject: str, extra: str = "", ctype: str = "text/plain; charset=us-ascii",
         return_path: str = "<>") -> str:
    return (f"Return-Path: {return_path}\nFrom: {frm}\nTo: alice@corp.example\n"
            f"Subject: {subject}\nDate: Tue, 04 Mar 2025 09:16:00 +0100\n"
            f"Message-ID: <notice-{zlib.crc32(subject.encode())}@mx.example>\n{extra}"
            f"MIME-Version: 1.0\nContent-Type: {ctype}\n\n")


def mixed(frm: str, subject: str, text: str, attached: str, extra: str = "",
          attached_type: str = "message/rfc822", return_path: str = "<>") -> str:
    return (head(frm, subject, extra, 'multipart/mixed; boundary="nb"', return_path)
            + f"--nb\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
            + f"--nb\nContent-Type: {attached_type}\n\n{attached}\n--nb--\n")


BODY = "\nHello Bob, here is the quote.\n"
COPY = ORIGINAL_HEADERS + BODY

NOTICES: dict[str, str] = {
    "qmail.eml": head("MAILER-DAEMON@mx.example", "failure notice") + f"""\
Hi. This is the qmail-send program at mx.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<bob@customer.example>:
Sorry, no mailbox here by that name. (#5.1.1)

<|/usr/local/bin/autoresponder>:
program exited with status 100

--- Below this line is a copy of the message.

{COPY}""",
    "exim.eml": head("Mail Delivery System <Mailer-Daemon@mx.example>",
                     "Mail delivery failed: returning message to sender",
                     "X-Failed-Recipients: bob@customer.example\nAuto-Submitted: auto-replied\n")
    + f"""\
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  bob@customer.example
    host mx.customer.example [192.0.2.7]
    SMTP error from remote mail server after RCPT TO:<bob@customer.example>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

{COPY}""",
    "exim_delayed.eml": head("Mail Delivery System <Mailer-Daemon@mx.example>",
                             "Warning: message 1tP2xy-0004aB-1C delayed 24 hours",
                             "Auto-Submitted: auto-replied\n") + f"""\
This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.

The message identifier is:     1tP2xy-0004aB-1C
The subject of the message is: Your quote
The date of the message is:    Tue, 04 Mar 2025 09:15:00 +0100

The address to which the message has not yet been delivered is:

  bob@customer.example
    Delay reason: SMTP error from remote mail server after RCPT TO:<bob@customer.example>:
    451 4.7.1 Greylisted, please try again later

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.

------ This is a copy of the message's headers. ------

{ORIGINAL_HEADERS}""",
    "postfix_plain.eml": head("MAILER-DAEMON@mx.example (Mail Delivery System)",
                              "Undelivered Mail Returned to Sender") + f"""\
This is the mail system at host mx.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<bob@customer.example>: host mx.customer.example[192.0.2.7] said: 550 5.1.1
    <bob@customer.example>: Recipient address rejected: User unknown (in reply
    to RCPT TO command)

{COPY}""",
    "sendmail_plain.eml": head("Mail Delivery Subsystem <MAILER-DAEMON@mx.example>",
                               "Returned mail: see transcript for details") + f"""\
The original message was received at Tue, 4 Mar 2025 09:15:00 +0100
from out.corp.example [192.0.2.1]

   ----- The following addresses had permanent fatal errors -----
<@relay.example:bob@customer.example>
    (reason: 550 5.1.1 <bob@customer.example>... User unknown)

   ----- Transcript of session follows -----
... while talking to mx.customer.example.:
>>> DATA
<<< 550 5.1.1 <bob@customer.example>... User unknown
550 5.1.1 bob@customer.example... User unknown

   ----- Original message follows -----

{COPY}""",
    "gmail.eml": head("Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                      "Delivery Status Notification (Failure)",
                      "X-Failed-Recipients: bob@customer.example\n") + f"""\
** Address not found **

Your message wasn't delivered to bob@customer.example because the address couldn't be found, \
or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.

----- Original message -----

{COPY}""",
    "gmail_delayed.eml": head("Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                              "Delivery Status Notification (Delay)") + f"""\
** Message not delivered yet **

There was a temporary problem delivering your message to bob@customer.example. \
Gmail will retry for 46 more hours. You'll be notified if the delivery fails permanently.

The response from the remote server was:
421 4.7.0 Try again later, closing connection.

----- Original message -----

{COPY}""",
    "yahoo.eml": head("MAILER-DAEMON@yahoo.com", "Failure Notice") + f"""\
Sorry, we were unable to deliver your message to the following address.

<bob@customer.example>:
Remote host said: 550 5.1.1 <bob@customer.example>: Recipient address rejected: \
User unknown in virtual mailbox table [RCPT_TO]

--- Below this line is a copy of the message.

{COPY}""",
    "exchange2003.eml": mixed("System Administrator <postmaster@corp-ex.example>",
                              "Undeliverable: Your quote", """\
Your message did not reach some or all of the intended recipients.

      Subject:\tYour quote
      Sent:\t3/4/2025 9:15 AM

The following recipient(s) could not be reached:

      bob@customer.example on 3/4/2025 9:16 AM
            The e-mail account does not exist at the organization this message was sent to.
            <mx.corp-ex.example #5.1.1 smtp;550 5.1.1 User unknown>
""", COPY),
    "opensmtpd.eml": head("Mailer Daemon <MAILER-DAEMON@mx.example>",
                          "Delivery status notification: error") + f"""\
Hi!

This is the MAILER-DAEMON, please DO NOT REPLY to this email.

An error has occurred while attempting to deliver a message for
the following list of recipients:

bob@customer.example: 550 5.1.1 <bob@customer.example>: Recipient address rejected

Below is a copy of the original message:

{COPY}""",
    "ses.eml": mixed("MAILER-DAEMON@amazonses.com", "Delivery Status Notification (Failure)",
                     """\
An error occurred while trying to deliver the mail to the following recipients:
bob@customer.example
""", ORIGINAL_HEADERS, attached_type="text/rfc822-headers"),
    "workmail.eml": mixed("MAILER-DAEMON@us-east-1.awsapps.com", "Undeliverable: Your quote", """\
Your message wasn't delivered to the following recipients:

bob@customer.example - Address does not exist.
""", COPY),
    "google_groups.eml": head("Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                              "Address not found",
                              "X-Failed-Recipients: sales-team@groups.example\n") + f"""\
** Address not found **

We're writing to let you know that the group you tried to contact (sales-team) may not \
exist, or you may not have permission to post messages to the group.

----- Original message -----

{COPY}""",
    "mailru.eml": head("Mail Delivery System <mailer-daemon@corp.mail.ru>",
                       "Mail failure.") + f"""\
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  bob@customer.example
    SMTP error from remote mail server after RCPT TO:<bob@customer.example>:
    host mx.customer.example [192.0.2.7]: 550 Message was not accepted -- invalid mailbox.

Это письмо создано автоматически сервером Mail.Ru, отвечать на него не нужно.
К сожалению, Ваше письмо не может быть доставлено одному или нескольким получателям.

--- The header of the original message is following. ---

{ORIGINAL_HEADERS}""",
    "domino.eml": mixed("Postmaster@domino.example", "DELIVERY FAILURE: User bob not listed",
                        """\
Your message

  Subject: Your quote

was not delivered to:

  bob@customer.example

because:

  User bob (bob@customer.example) not listed in Domino Directory
""", COPY, return_path="<postmaster@domino.example>"),
    "dsn_in_mixed.eml": (head("postmaster@mx.example", "Undeliverable: Your quote", "",
                              'multipart/mixed; boundary="nb"')
                         + "--nb\nContent-Type: text/plain\n\nDelivery has failed.\n"
                         + "--nb\nContent-Type: message/delivery-status\n\n"
                         + "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; "
                         + "bob@customer.example\nAction: failed\nStatus: 5.1.1\n"
                         + f"\n--nb\nContent-Type: message/rfc822\n\n{COPY}\n--nb--\n"),
    "dsn_sloppy.eml": (head("MAILER-DAEMON@mx.example", "Returned mail", "",
                            'multipart/report; report-type=delivery-status; boundary="nb"')
                       + "--nb\nContent-Type: text/plain\n\nSee below.\n"
                       + "--nb\nContent-Type: message/delivery-status\n\n"
                       + "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; "
                       + "bob@customer.example\nDiagnostic-Code: smtp; 550 5.1.1 the account\n"
                       + "does not exist\nAction : failed\nStatus: 5.1.1\n"
                       + f"\n--nb\nContent-Type: text/rfc822-headers\n\n{ORIGINAL_HEADERS}"
                       + "\n--nb--\n"),
    # RFC 5429: a Sieve "reject" (here Dovecot's over-quota refusal) answers with an MDN
    "sieve_reject.eml": (head("Mail Delivery Subsystem <MAILER-DAEMON@mx.example>",
                              "Automatically rejected mail", "",
                              'multipart/report; report-type=disposition-notification; '
                              'boundary="nb"')
                         + "--nb\nContent-Type: text/plain; charset=utf-8\n\n"
                         + "Your message to <bob@customer.example> was automatically rejected:"
                         + "\nQuota exceeded (mailbox for user is full)\n"
                         + "--nb\nContent-Type: message/disposition-notification\n\n"
                         + "Reporting-UA: mx.example; Dovecot Mail Delivery Agent\n"
                         + "Final-Recipient: rfc822; bob@customer.example\n"
                         + "Original-Message-ID: <quote-7@corp.example>\n"
                         + "Disposition: automatic-action/MDN-sent-automatically; deleted\n"
                         + f"\n--nb\nContent-Type: message/rfc822\n\n{COPY}\n--nb--\n"),
    # Ordinary mail that must stay ordinary
    "person_quotes_bounce.eml": head("Carol <carol@customer.example>",
                                     "Re: my mail could not be delivered",
                                     return_path="<carol@customer.example>") + """\
Hi Alice, my message to bob@customer.example could not be delivered, the server said:

  bob@customer.example: 550 5.1.1 User unknown

Can you check his address? Carol
""",
    # Auto-replies
    "oof_exchange.eml": head("Bob <bob@customer.example>", "Automatic reply: Your quote",
                             "X-Auto-Response-Suppress: All\nAuto-Submitted: auto-replied\n",
                             return_path="<>") + "I am out of the office until 10 March.\n",
    "oof_german.eml": head("Bob <bob@customer.example>", "Abwesenheitsnotiz: Your quote",
                           return_path="<bob@customer.example>")
    + "Ich bin bis 10. März nicht im Büro.\n",
    "oof_french.eml": head("Bob <bob@customer.example>", "Réponse automatique : Your quote",
                           return_path="<bob@customer.example>")
    .replace("Subject: Réponse automatique : Your quote",
             "Subject: =?utf-8?q?R=C3=A9ponse_automatique_=3A_Your_quote?=")
    + "Je suis absent.\n",
    "x_autoreply.eml": head("Bob <bob@customer.example>", "Re: Your quote",
                            "X-Autoreply: yes\n", return_path="<bob@customer.example>")
    + "Thanks, we received your mail.\n",
    "x_autorespond.eml": head("Bob <bob@customer.example>", "Thank you for your mail",
                              "X-Autorespond: Thank you for your mail\n",
                              return_path="<bob@customer.example>") + "We will answer soon.\n",
    "precedence_auto_reply.eml": head("Bob <bob@customer.example>", "Away",
                                      "Precedence: auto_reply\n",
                                      return_path="<bob@customer.example>") + "Away.\n",
    "auto_generated.eml": head("Calendar <calendar@customer.example>", "Reminder: call Bob",
                               "Auto-Submitted: auto-generated\n",
                               return_path="<calendar@customer.example>") + "At 10:00.\n",
    "null_sender_unclassified.eml": head("Postmaster <postmaster@mx.example>",
                                         "Notice from mx.example") + "Your mailbox is almost "
    "full.\n",
}


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, text in NOTICES.items():
        (HERE / name).write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    print(f"{len(NOTICES)} files -> {HERE}")


if __name__ == "__main__":
    main()
