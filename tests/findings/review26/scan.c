// C regions of 300 KiB cached (freed), then M live untouched blocks of Z KiB, each a miss
// that no cached region serves: times the misses. usage: ./scan C M Z
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define SINK(p) __asm__ volatile(""::"r"(p):"memory")
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int c,char**v){int C=atoi(v[1]),M=atoi(v[2]);size_t Z=atol(v[3])<<10;void**a=malloc(C*sizeof*a),**b=malloc(M*sizeof*b);
 for(int i=0;i<C;i++){a[i]=malloc(300<<10);memset(a[i],1,300<<10);}for(int i=0;i<C;i++)free(a[i]);
 double t=now();for(int i=0;i<M;i++){b[i]=malloc(Z);((char*)b[i])[0]=1;SINK(b[i]);}t=now()-t;
 printf("%.1f us per miss\n",t/M*1e6);for(int i=0;i<M;i++)free(b[i]);return 0;}
