# SMTP command transcripts for test_smtp_commands.py.
#
# "=== name" starts a session (a new connection; its greeting is checked
# to be 220 first).  "> text" is a client line, sent with CRLF; ">> text"
# is sent as is, with \r \n \t \\ escapes and no CRLF added.  Consecutive
# client lines go out in one write (pipelining).  "< text" is an expected
# reply line: the next line the server sends must start with it ($HOST is
# the daemon's hostname); a multi-line reply needs one "<" line per line.
# "! closed" expects the server to close the connection.

=== helo
> HELO client.example
< 250 $HOST
> MAIL FROM:<a@example.org>
< 250 2.1.0 Sender <a@example.org> ok
> RCPT TO:<b@example.com>
< 250 2.1.5 Recipient <b@example.com> ok
> RSET
< 250 2.0.0 Ok
> QUIT
< 221 2.0.0 Bye
! closed

=== helo_syntax
> HELO
< 501 5.5.4 Syntax: HELO hostname
> EHLO
< 501 5.5.4 Syntax: EHLO hostname
> HELO two words
< 501 5.5.4
> MAIL FROM:<a@example.org>
< 503 5.5.1 Error: send HELO/EHLO first
> HELO [127.0.0.1]
< 250 $HOST

=== mail_before_helo
> MAIL FROM:<a@example.org>
< 503 5.5.1 Error: send HELO/EHLO first
> RCPT TO:<b@example.com>
< 503 5.5.1 Error: need MAIL command
> DATA
< 503 5.5.1 Error: need MAIL command

=== order
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> RCPT TO:<b@example.com>
< 503 5.5.1 Error: need MAIL command
> DATA
< 503 5.5.1 Error: need MAIL command
> MAIL FROM:<a@example.org>
< 250 2.1.0
> MAIL FROM:<c@example.org>
< 503 5.5.1 Error: nested MAIL command
> DATA
< 503 5.5.1 Error: need RCPT command
> RCPT TO:<b@example.com>
< 250 2.1.5
> DATA
< 354 End data with <CR><LF>.<CR><LF>
> Subject: order
>
> text
> .
< 250 2.0.0 Ok: queued as
> RCPT TO:<b@example.com>
< 503 5.5.1 Error: need MAIL command

=== only_refused_recipients
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> MAIL FROM:<a@example.org>
< 250 2.1.0
> RCPT TO:<bad address@example.com>
< 501 5.1.3 Bad recipient address syntax
> RCPT TO:<>
< 501 5.1.3
> DATA
< 554 5.5.1 Error: no valid recipients
> NOOP
< 250 2.0.0 Ok

=== mail_syntax
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> MAIL
< 501 5.5.4 Syntax: MAIL FROM:<address> [parameters]
> MAIL FROM:
< 501 5.5.4 Syntax: MAIL FROM:<address> [parameters]
> MAIL FROM:a@example.org
< 501 5.5.4
> MAIL TO:<a@example.org>
< 501 5.5.4
> MAIL FROM:<a@>
< 501 5.1.7 Bad sender address syntax
> MAIL FROM:<a b@example.org>
< 501 5.1.7
> MAIL FROM:<@example.org>
< 501 5.1.7
> MAIL FROM:<a@example.org> FOO=bar
< 555 5.5.4 Error: unsupported parameter or parameter not allowed here
> MAIL FROM:<a@example.org> SIZE=abc
< 501 5.5.4 Error: bad parameter value
> MAIL FROM:<a@example.org> SIZE=1 SIZE=2
< 501 5.5.4 Error: parameter given twice
> MAIL FROM:<a@example.org> BODY=9BIT
< 501 5.5.4
> MAIL FROM:<a@example.org> RET=MAYBE
< 501 5.5.4
> MAIL FROM:<jürgen@example.org>
< 553 5.6.7 Error: non-ASCII address needs SMTPUTF8
> MAIL FROM:<a@example.org> SIZE=10 BODY=8BITMIME RET=FULL ENVID=x
< 250 2.1.0 Sender <a@example.org> ok

=== rcpt_syntax
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> MAIL FROM:<a@example.org>
< 250 2.1.0
> RCPT
< 501 5.5.4 Syntax: RCPT TO:<address> [parameters]
> RCPT TO:b@example.com
< 501 5.5.4
> RCPT TO:<b@@example.com>
< 501 5.1.3 Bad recipient address syntax
> RCPT TO:<b@example.com> FOO=1
< 555 5.5.4
> RCPT TO:<b@example.com> NOTIFY=SOMETIMES
< 501 5.5.4
> RCPT TO:<b@example.com> NOTIFY=NEVER,SUCCESS
< 501 5.5.4
> RCPT TO:<jürgen@example.com>
< 553 5.6.7
> RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;b@example.com
< 250 2.1.5 Recipient <b@example.com> ok
> RCPT TO:<Postmaster>
< 250 2.1.5 Recipient <Postmaster> ok

=== params_after_helo
> HELO client.example
< 250 $HOST
> MAIL FROM:<a@example.org> SIZE=100
< 555 5.5.4
> MAIL FROM:<a@example.org> BODY=8BITMIME
< 555 5.5.4
> MAIL FROM:<a@example.org>
< 250 2.1.0
> RCPT TO:<b@example.com> NOTIFY=NEVER
< 555 5.5.4
> BDAT 0 LAST
< 502 5.5.1 Error: BDAT is not implemented

=== rset
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> MAIL FROM:<a@example.org>
< 250 2.1.0
> RCPT TO:<b@example.com>
< 250 2.1.5
> RSET
< 250 2.0.0 Ok
> RCPT TO:<b@example.com>
< 503 5.5.1 Error: need MAIL command
> DATA
< 503 5.5.1 Error: need MAIL command
> RSET now
< 501 5.5.4 Syntax: RSET takes no argument
> MAIL FROM:<a@example.org>
< 250 2.1.0
> EHLO again.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> RCPT TO:<b@example.com>
< 503 5.5.1 Error: need MAIL command

=== misc_commands
> VRFY postmaster
< 252 2.5.0
> VRFY
< 501 5.5.4 Syntax: VRFY address
> EXPN staff
< 502 5.5.1
> EXPN
< 502 5.5.1
> HELP
< 214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET VRFY EXPN HELP NOOP QUIT
< 214-2.0.0
< 214 2.0.0
> HELP MAIL
< 214-2.0.0
< 214-2.0.0
< 214 2.0.0
> NOOP
< 250 2.0.0 Ok
> NOOP ignored argument
< 250 2.0.0 Ok
> XYZZY
< 500 5.5.2 Error: command not recognized
> MAILFROM:<a@example.org>
< 500 5.5.2
>
< 500 5.5.2
> STARTTLS
< 502 5.5.1 Error: STARTTLS is not implemented
> AUTH PLAIN AGFAAGI=
< 502 5.5.1 Error: AUTH is not implemented
> DATA now
< 501 5.5.4 Syntax: DATA takes no argument
> QUIT now
< 501 5.5.4 Syntax: QUIT takes no argument
> QUIT
< 221 2.0.0 Bye
! closed

=== lowercase
> ehlo client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
> mail from:<a@example.org> size=12 body=8bitmime
< 250 2.1.0 Sender <a@example.org> ok
> rcpt to:<b@example.com> notify=failure
< 250 2.1.5
> Data
< 354
> lower case
> .
< 250 2.0.0 Ok: queued as
> noop
< 250 2.0.0
> vrfy x
< 252 2.5.0
> rset
< 250 2.0.0
> quit
< 221 2.0.0
! closed

=== pipelining
> EHLO client.example
> MAIL FROM:<a@example.org>
> RCPT TO:<b@example.com>
> RCPT TO:<c@example.com>
> DATA
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
< 250 2.1.0 Sender <a@example.org> ok
< 250 2.1.5 Recipient <b@example.com> ok
< 250 2.1.5 Recipient <c@example.com> ok
< 354
> Subject: pipelined
>
> body
> .
> MAIL FROM:<d@example.org>
> RCPT TO:<bad@>
> RCPT TO:<e@example.com>
> RSET
> NOOP
> QUIT
< 250 2.0.0 Ok: queued as
< 250 2.1.0 Sender <d@example.org> ok
< 501 5.1.3
< 250 2.1.5 Recipient <e@example.com> ok
< 250 2.0.0 Ok
< 250 2.0.0 Ok
< 221 2.0.0 Bye
! closed

=== bare_lf_in_command
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
>> NOOP\nMAIL FROM:<a@example.org>\r\n
< 500 5.5.2 Error: bare <CR> or <LF> in command
>> MAIL FROM:<a@example.org>\rRCPT TO:<b@example.com>\r\n
< 500 5.5.2
> RCPT TO:<b@example.com>
< 503 5.5.1 Error: need MAIL command
> MAIL FROM:<a@example.org>
< 250 2.1.0
>> RCPT TO:<b@example.com>\n
>> RCPT TO:<c@example.com>\r\n
< 500 5.5.2
> NOOP
< 250 2.0.0 Ok

=== bdat_rules
> EHLO client.example
< 250-$HOST
< 250-PIPELINING
< 250-SIZE
< 250-8BITMIME
< 250-ENHANCEDSTATUSCODES
< 250-SMTPUTF8
< 250-DSN
< 250 CHUNKING
>> BDAT 4\r\nabcd
< 503 5.5.1 Error: need MAIL command
> BDAT
< 501 5.5.4 Syntax: BDAT size [LAST]
> BDAT -1
< 501 5.5.4
> MAIL FROM:<a@example.org>
< 250 2.1.0
>> BDAT 4\r\nabcd
< 503 5.5.1 Error: need RCPT command
> RCPT TO:<b@example.com>
< 250 2.1.5
>> BDAT 4\r\nab\r\n
< 250 2.0.0 4 octets received
> DATA
< 503 5.5.1 Error: DATA cannot follow BDAT in one transaction
>> BDAT 3 LAST\r\ncd\n
< 550 5.6.0
> NOOP
< 250 2.0.0 Ok
