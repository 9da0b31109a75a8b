// N threads each run an arena burst (REQ requests of NOBJ objects of 16..MAXS
// B, allocated then freed), then stay idle (blocked) while main reads RSS.
// usage: idle_burst THREADS REQ NOBJ MAXS
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int NT, REQ, NOBJ, MAXS;
static pthread_barrier_t done, go_exit; static pthread_mutex_t ser = PTHREAD_MUTEX_INITIALIZER; static int SER;
static long rss_kb(void) { long a, b; FILE *f = fopen("/proc/self/statm", "r"); fscanf(f, "%ld %ld", &a, &b); fclose(f); return b * 4; }
static void *w(void *arg) {
  unsigned long long r = 88172645463325252ull + (long)arg;
  if (SER) pthread_mutex_lock(&ser);
  void **v = malloc(sizeof(void *) * NOBJ);
  for (int q = 0; q < REQ; q++) {
    for (int i = 0; i < NOBJ; i++) { r ^= r << 13; r ^= r >> 7; r ^= r << 17; size_t s = 16 + r % (MAXS - 15); char *p = malloc(s); memset(p, i, s); v[i] = p; }
    for (int i = 0; i < NOBJ; i++) free(v[i]);
  }
  free(v);
  if (SER) pthread_mutex_unlock(&ser);
  pthread_barrier_wait(&done);
  pthread_barrier_wait(&go_exit);
  return NULL;
}
int main(int argc, char **argv) {
  NT = atoi(argv[1]); REQ = atoi(argv[2]); NOBJ = atoi(argv[3]); MAXS = atoi(argv[4]); SER = argc > 5 ? atoi(argv[5]) : 0;
  pthread_barrier_init(&done, NULL, NT + 1); pthread_barrier_init(&go_exit, NULL, NT + 1);
  pthread_t t[1024];
  for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, w, (void *)i);
  pthread_barrier_wait(&done);
  long a = rss_kb();
  sleep(1);
  long b = rss_kb();
  pthread_barrier_wait(&go_exit);
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  long c = rss_kb();
  sleep(3);
  long d = rss_kb();
  printf("idle_rss_kb %ld after1s %ld after_exit %ld exit+3s %ld\n", a, b, c, d);
  return 0;
}
