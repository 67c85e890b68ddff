/*
 * hello_fcgi: the smallest useful FastCGI responder, the yardstick of
 * tools/bench/api.sh. It answers every request with 200 {"ok":true} and does
 * nothing else: no body parsing, no database, no logging. Put behind the same
 * lighttpd config and the same pools as consuma-fcgi, the requests per second
 * it reaches are the ceiling of what lighttpd + FastCGI allow on the machine,
 * and consuma's throughput is reported as a fraction of it.
 *
 * Listening socket on fd 0 (spawn-fcgi) or --socket PATH. Single threaded;
 * SIGTERM's default action ends it (it holds no state worth finishing).
 */
#include <stdio.h>
#include <string.h>
#include <fcgiapp.h>

static const char response[] = "Status: 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 12\r\n"
                               "\r\n"
                               "{\"ok\":true}\n";

int main(int argc, char **argv)
{
	FCGX_Request req;
	int fd = 0;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("hello_fcgi: answers every FastCGI request with {\"ok\":true}\n"
		       "usage: hello_fcgi [--socket PATH]  (else the socket on fd 0)\n");
		return 0;
	}
	if (FCGX_Init() != 0)
		return 1;
	if (argc == 3 && strcmp(argv[1], "--socket") == 0) {
		fd = FCGX_OpenSocket(argv[2], 1024);
		if (fd < 0) {
			fprintf(stderr, "hello_fcgi: cannot listen on %s\n", argv[2]);
			return 1;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: hello_fcgi [--socket PATH]\n");
		return 2;
	}
	if (FCGX_InitRequest(&req, fd, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_PutStr(response, (int)(sizeof(response) - 1), req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
