// two threads; in each period one produces buffers (lo..hi) into a queue, the other frees them; roles swap every P ms
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>
#define Q 1024
static void* qb[2][Q]; static _Atomic unsigned qh[2], qt[2]; static double P; static int rounds; static size_t lo,hi;
static _Atomic long ops[2];
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
static double T0;
static void* th(void* a){ long id=(long)a; unsigned r=id+1; int q=id;  // thread id produces into queue id, consumes queue 1-id
 for(;;){ double t=now()-T0; int per=(int)(t/P); if(per>=rounds) break; int prod=(per%2)==id;
   if(prod){ if(qt[q]-qh[q]<Q){ r=r*1103515245+12345; size_t s=lo+(r>>8)%(hi-lo); char* p=malloc(s); memset(p,1,s>8192?8192:s); qb[q][qt[q]%Q]=p; qt[q]++; ops[id]++; } }
   int c=1-id; while(qh[c]!=qt[c]){ free(qb[c][qh[c]%Q]); qh[c]++; ops[id]++; }
 } return 0;}
int main(int c,char**v){ rounds=atoi(v[1]); P=atof(v[2])/1000; lo=atol(v[3]); hi=atol(v[4]); T0=now();
 pthread_t t[2]; for(long i=0;i<2;i++) pthread_create(&t[i],0,th,(void*)i); for(int i=0;i<2;i++) pthread_join(t[i],0);
 printf("ops %ld\n", ops[0]+ops[1]); return 0;}
